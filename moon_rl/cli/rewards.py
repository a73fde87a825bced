"""`moon-rl rewards list|check`: see the available rewards, and test one against the reward contract.

    moon-rl rewards list
    moon-rl rewards check attribute_f1 --data data/grpo
    moon-rl rewards check my_rewards.py:brand_match --data data/grpo --completions samples.jsonl

`check` exits 1 when the reward breaks the contract (wrong length, wrong types, non-finite values,
exceptions), ending on one `error:` line with the reward's exception or first bad value and its row; 2 on a
usage error. The checks themselves live in `reward_fns.check`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from moon_rl.cli.common import run_guarded

rewards_app = typer.Typer(
    name="rewards",
    help="List the available reward functions and check one against the reward contract.",
    no_args_is_help=True,
)


@rewards_app.command("list")
def list_rewards() -> None:
    """Every reward usable in --reward (built-ins and installed plug-ins), with its one-line description."""

    def run() -> None:
        from reward_fns.registry import BUILTINS, available_rewards

        rewards = available_rewards()
        width = max(len(name) for name in rewards)
        for name, doc in rewards.items():
            origin = "built-in" if name in BUILTINS else "plug-in "
            typer.echo(f"{name:<{width}}  {origin}  {doc}")
        typer.echo(
            "\nAlso usable: 'package.module:function' and 'path/to/file.py:function'. "
            "Spec syntax: NAME[(arg=value, ...)][=WEIGHT]."
        )

    run_guarded(run)


@rewards_app.command("check")
def check(
    spec: str = typer.Argument(
        ..., help="Reward spec: NAME[(arg=value, ...)][=WEIGHT], e.g. 'attribute_f1(normalize=true)' or 'f.py:fn'."
    ),
    data: Path = typer.Option(
        ..., "--data", help="A prepared GRPO dataset folder (`moon-rl data prepare --task grpo`)."
    ),
    completions: Path | None = typer.Option(
        None,
        "--completions",
        help="Completions to score instead of synthesised ones: a .jsonl file of {\"row\": i, \"completion\": ...} "
        "objects, or any other text file with one completion per line (line k goes to row k modulo --rows).",
    ),
    rows: int = typer.Option(8, "--rows", min=1, help="How many dataset rows (from the start) to use."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random embeddings passed as `embeddings`."),
) -> None:
    """Run a reward on sample completions and report contract violations; exit 1 if there are any."""

    def run() -> bool:
        from reward_fns.check import check_reward, failure_line, format_report

        report = check_reward(spec, data, completions_file=completions, max_rows=rows, seed=seed)
        typer.echo(format_report(report))
        if not report.ok:  # last, on stderr: the one line that says what broke, where, and the fix
            typer.echo(f"error: {failure_line(report)}", err=True)
        return report.ok

    if not run_guarded(run):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(rewards_app, name="rewards")
