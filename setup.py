"""Packaging that pyproject.toml cannot say: the configs live at the top of the repository
(conf/) and ship inside the package as qbn/conf, so an installed qbn finds them."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "qbn.conf"],
    package_dir={"": "src", "qbn.conf": "conf"},
    package_data={"qbn.conf": ["*.yaml", "*/*.yaml", "*/*/*.yaml"]},   # conf/study/scale/ is two deep
)
