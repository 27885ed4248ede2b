"""What every command shares: the `main` group, `InputError`, and the checks that run before
any work (outputs, devices, dataset files, models and problems)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from .. import __version__, _checks
from .._checks import MAX_DESIGNS  # noqa: F401 (the commands' limit, imported from here)
from ..solvers import SIMPSettings

_D = SIMPSettings()  # the CLI's defaults are the library's


class InputError(click.ClickException):
    """Bad user input: one line on stderr, exit code 2."""

    exit_code = 2


def output_path(path: str | None, what: str, image: bool = False) -> Path | None:
    """A file to write, checked before any work (`topovae._checks.output_file`)."""
    if path is None:
        return None
    return _checks.output_file(path, what, InputError, image=image)


def output_folder(path: str, what: str = "--out", parents: bool = False) -> Path:
    """A folder to write into, checked before any work (`topovae._checks.output_folder`)."""
    return _checks.output_folder(path, what, InputError, parents=parents)


def check_device(device: str | None) -> None:
    """--device resolved before any work ("auto", "cpu", "cuda" with a GPU, "cuda:N")."""
    if device is None:
        return
    from ..solvers import ProblemError
    from ..solvers.batched import resolve_device

    try:
        resolve_device(device)
    except ProblemError as e:
        raise InputError(f"--device: {e}") from None


class Command(click.Command):
    """A command that refuses an empty value ('' for a file, a folder, a name) before it runs:
    Path("") is the current folder, so each would have failed later naming '.'."""

    def invoke(self, ctx: click.Context) -> Any:
        for param in self.params:
            value = ctx.params.get(param.name)
            values = value if isinstance(value, tuple | list) else (value,)
            if any(isinstance(v, str) and not v.strip() for v in values):
                label = (
                    param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
                )
                raise InputError(f"{label} is empty ({value!r}); give a value")
        return super().invoke(ctx)


class Group(click.Group):
    """A group whose commands and subgroups refuse empty values (`Command`)."""

    command_class = Command


Group.group_class = Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="topovae")
def main() -> None:
    """topovae: design-space generative topology optimization."""


def dataset_header(path: str, verify: bool = False) -> dict[str, Any]:
    """The file's header; ``verify``: also read every array back (checksums), for commands that
    read most of a file, so that damage even in an array they do not use is named up front."""
    from ..datasets import read_header
    from ..datasets._store import verify_dataset
    from ..solvers import ProblemError

    try:
        header = read_header(path)
        if verify:
            verify_dataset(path)
        return header
    except ProblemError as e:
        raise InputError(str(e)) from None


def load_model(checkpoint: str):
    from ..models import ConfigError, load

    try:
        return load(checkpoint)
    except ConfigError as e:
        raise InputError(str(e)) from None


def problem_options(f):
    """--problem/--volfrac/--problem-file/--data/--index: the problem a model works on."""
    f = click.option("--index", type=int, help="With --data: the sample's index in the file.")(f)
    f = click.option(
        "--data", help="A dataset file: use the problem (and SIMP design) of --index."
    )(f)
    f = click.option("--problem-file", type=click.Path(dir_okay=False),
                     help="A problem saved with Problem.save (.npz).")(f)  # fmt: skip
    f = click.option("--volfrac", type=float, help="Volume fraction of the --problem preset.")(f)
    f = click.option(
        "--problem", "-p", help="A preset problem on the model's grid (see solve --list)."
    )(f)
    return f


def model_problem(model, problem, volfrac, problem_file, data, index):
    """(Problem or None, SIMP reference design or None) from the problem options."""
    from ..solvers import Problem, ProblemError, preset
    from ..workflows import WorkflowError, condition_of

    given = [x is not None for x in (problem, problem_file, data)]
    if sum(given) > 1:
        raise InputError("give one of --problem, --problem-file and --data")
    cfg = model.config
    prob, reference = None, None
    try:
        if problem is not None:
            prob = preset(problem, nelx=cfg.width, nely=cfg.height, volfrac=volfrac)
        elif problem_file is not None:
            prob = Problem.load(problem_file)
        elif data is not None:
            from ..datasets import TopologyDataset

            if index is None:
                raise InputError("--data needs --index (a sample of the file)")
            dataset_header(data)
            ds = TopologyDataset(data, split="all")
            k = ds.position(index)
            if k is None:
                raise InputError(f"--index {index} is not in {data} (it holds {len(ds)} samples)")
            prob, reference = ds.problem(k), ds[k]["density"][0].numpy().astype(np.float64)
    except (ProblemError, ValueError) as e:
        raise InputError(str(e)) from None
    if prob is not None:
        try:
            condition_of(model, prob)
        except WorkflowError as e:
            source = (
                f"--problem {problem!r}" if problem is not None
                else f"--problem-file {problem_file!r}" if problem_file is not None
                else f"--data {data!r} --index {index}"
            )  # fmt: skip
            raise InputError(f"{source}: {e}") from None
    elif cfg.conditional:
        raise InputError(
            "this model is a cvae: give the problem to condition it on with --problem, "
            "--problem-file or --data and --index"
        )
    return prob, reference


def workflow_errors():
    from ..workflows import JudgeError, WorkflowError

    return (WorkflowError, JudgeError)
