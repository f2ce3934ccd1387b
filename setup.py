"""Packaging that pyproject.toml cannot say: the configs live at the top of the repository
(conf/) and ship inside the package as qbn/conf, so an installed qbn finds them. Each config
folder is listed as a package of its own (qbn.conf.model, qbn.conf.study.scale, ...): setuptools
warns about, and will one day drop, data folders that are not."""

from setuptools import find_namespace_packages, find_packages, setup

CONF = ["qbn.conf", *(f"qbn.conf.{name}" for name in find_namespace_packages("conf"))]

setup(
    packages=[*find_packages("src"), *CONF],
    package_dir={"": "src", "qbn.conf": "conf"},
    package_data={name: ["*.yaml"] for name in CONF},
)
