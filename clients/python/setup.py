# Metadata lives in setup.cfg. There is deliberately no pyproject.toml: with one, pip builds in an
# isolated environment and must download setuptools, which fails offline; without it, pip uses the
# installed setuptools (Debian's python3-setuptools), so `pip install ./clients/python` needs no network.
from setuptools import setup

setup()
