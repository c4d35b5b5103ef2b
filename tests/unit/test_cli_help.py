"""`mvg-sync --help` per command (issue 11.7): exit codes, variables, help on every argument."""

from __future__ import annotations

import argparse

import pytest

from mvg_sync.cli import COMMANDS, build_parser


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_has_help_on_every_argument():
    commands = subparsers()
    assert set(commands) == set(COMMANDS)
    for name, parser in commands.items():
        for action in parser._actions:
            assert action.help, f"mvg-sync {name}: {action.dest} has no help"


@pytest.mark.parametrize("command", ["sync", "status", "reconcile", "report", "approve", "redrive"])
def test_command_help_lists_exit_status_and_environment(command, capsys):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "exit status:" in text and "MVG_STATE_DIR" in text
    assert "  0 " in text and "  1 " in text


def test_sync_help_names_the_interrupt_codes_and_report_takes_the_flow_periods(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sync", "--help"])
    text = capsys.readouterr().out
    assert "130" in text and "143" in text and "  3 " in text and "CLINIC24_BASE_URL" in text
    args = build_parser().parse_args(["report", "--period", "last_week"])
    assert args.period == "last_week"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["report", "--period", "last_month"])


def test_verbosity_is_accepted_before_and_after_the_command():
    assert build_parser().parse_args(["-v", "status"]).verbose
    assert build_parser().parse_args(["status", "--debug"]).debug
    assert not build_parser().parse_args(["status"]).verbose
