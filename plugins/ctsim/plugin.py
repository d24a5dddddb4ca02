"""The built-in data set ``ctsim``, registered like any plugin (entry point ``ctsim``)."""

from synthaug import hookimpl


@hookimpl
def register_datasets(register):
    register("ctsim", "synthaug_plugins.ctsim.source:CTSimSource",
             summary="simulated covid/normal/viral chest radiographs + labeled CTs from the example CT")
