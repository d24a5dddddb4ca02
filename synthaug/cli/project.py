"""``synthaug project``: one CT volume -> one radiograph (PNG) or line-integral image (NPY)."""

from __future__ import annotations

import click

from synthaug.cli import main
from synthaug.errors import SynthaugError
from synthaug.kit.sizes import parse_size


def _floats(text: str, count: int, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise SynthaugError(f"{what} must be {count} comma-separated numbers; got {text!r}") from None
    if len(values) != count:
        raise SynthaugError(f"{what} must be {count} comma-separated numbers; got {text!r}")
    return values


def _size(size: str | None, rest: tuple[str, ...]) -> tuple[int, int]:
    """``--size H``, ``--size H W``, ``--size HxW`` or ``--size H,W``."""
    if size is None:
        if rest:
            raise SynthaugError(f"unexpected arguments {' '.join(rest)!r}")
        return 256, 256
    numbers = parse_size("x".join([size, *rest]), (1, 2), "--size", expected="H or H W (detector pixels)")
    return numbers[0], numbers[-1]


@main.command("project", context_settings={"ignore_unknown_options": False})
@click.option("--projector", default="siddon", show_default=True,
              help="A registered projector (siddon, parallel, ...).")
@click.option("--volume", "volume_path", required=True, type=click.Path(dir_okay=False),
              help="CT volume, .nii or .nii.gz (HU).")
@click.option("--size", default=None, help="Detector H [W] in pixels (also HxW). Default 256.")
@click.option("--spacing", type=float, default=None, help="Detector pixel spacing, mm. Default: fit the volume.")
@click.option("--sdd", type=float, default=1020.0, show_default=True, help="Source-to-detector distance, mm.")
@click.option("--sid", type=float, default=850.0, show_default=True, help="Source-to-isocentre distance, mm.")
@click.option("--pose", default="0,0,0,0,0,0", show_default=True,
              help="Volume pose rx,ry,rz (degrees, intrinsic x-y-z), tx,ty,tz (mm).")
@click.option("--view", type=click.Choice(["AP", "PA"]), default="AP", show_default=True)
@click.option("--beam", type=click.Choice(["cone", "parallel"]), default="cone", show_default=True)
@click.option("--mode", type=click.Choice(["raw", "radiograph"]), default="radiograph", show_default=True,
              help="raw: line integral of attenuation; radiograph: [0, 1] appearance.")
@click.option("--checkpoint", type=click.Path(), default=None,
              help="Passed to projectors that need a trained model (e.g. xpgan).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="OUT.png (8-bit) or OUT.npy (float32 H x W).")
@click.argument("rest", nargs=-1, required=False)
def project_command(projector, volume_path, size, spacing, sdd, sid, pose, view, beam, mode, checkpoint, out, rest):
    """Project a CT volume to a radiograph (digitally reconstructed radiograph)."""
    from synthaug.pipeline.load import load_volumes
    from synthaug.pipeline.project import project_file

    height, width = _size(size, rest)
    volumes = load_volumes("nifti", volume_path)
    info = project_file(volumes[0], out, projector=projector, height=height, width=width, pixel_spacing=spacing,
                        sdd=sdd, sid=sid, pose=_floats(pose, 6, "--pose"), view=view, beam=beam, mode=mode,
                        checkpoint=checkpoint)
    click.echo(f"wrote {info['out']} ({info['height']}x{info['width']}, {info['mode']}, projector {info['projector']}, "
               f"pixel {info['pixel_spacing']:.3f} mm, {info['seconds']:.2f} s)")
