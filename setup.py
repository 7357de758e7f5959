"""The compiled hot paths, built when they can be: the parser's (edge/parser/onepass.pyx)
and the archive export's MessagePack decoder (edge/archive/msgcols.pyx).

Everything else is in pyproject.toml. The extension is optional: without Cython, a
C compiler or Python's headers the install still succeeds and edge.parser runs its
pure-Python parser (edge.parser.PATH says which runs; the parse stage logs it), and
the archive decodes with msgpack (edge.archive.columnar.PATH).
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """A failed compile is a warning, not a failed install: the pure parser runs."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure means "no extension"
            self.warn(f"edge.parser.onepass not built ({exc}); the pure-Python parser will run")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self.warn(f"{ext.name} not built ({exc}); the pure-Python parser will run")


def extensions() -> list:
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("warning: Cython is not installed; edge.parser.onepass is not built")
        return []
    try:
        return cythonize([Extension("edge.parser.onepass", ["edge/parser/onepass.pyx"],
                                    extra_compile_args=["-O3"], optional=True),
                          Extension("edge.archive.msgcols", ["edge/archive/msgcols.pyx"],
                                    extra_compile_args=["-O3"], optional=True)],
                         compiler_directives={"language_level": 3}, quiet=True)
    except Exception as exc:  # noqa: BLE001 - a Cython error means "no extension", not "no install"
        print(f"warning: edge/parser/onepass.pyx did not compile ({exc}); the pure parser will run")
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
