"""Projectors ``siddon`` (exact DRR; numba CPU + differentiable torch) and ``parallel`` (sum along the
view axis). Registration only: numba and torch are imported when a projector is first used."""

from synthaug import hookimpl


@hookimpl
def register_projectors(register):
    register("siddon", "synthaug_plugins.siddon_drr.projector:SiddonProjector",
             summary="exact DRR, Siddon/Jacobs ray traversal (numba CPU, differentiable torch)")
    register("parallel", "synthaug_plugins.siddon_drr.parallel:ParallelProjector",
             summary="parallel projection: sum (or mean) of attenuation along the view axis")
