"""The checked-in shell completions are fresh, and completion works against the real program."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.daemon import REPO, env_for, run_cli

COMPLETIONS = REPO / "completions"
COMPLETE_VAR = "_AXME_COMPLETE"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_completions", REPO / "scripts" / "gen_completions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


@pytest.fixture
def axme_launcher(tmp_path: Path) -> Path:
    """A directory holding an executable `axme` that runs `axme_cli.main:main`.

    It is what pip writes for the console script: the program runs with argv[0] == "axme",
    which is how Typer derives the prog name and so the `_AXME_COMPLETE` variable.
    (`python -m axme_cli` reports itself as "python -m axme_cli" and ignores `_AXME_COMPLETE`.)
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "axme"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom axme_cli.main import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    return bin_dir


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = env_for(home)
    for name in ("COMP_WORDS", "COMP_CWORD", "_TYPER_COMPLETE_ARGS", COMPLETE_VAR):
        env.pop(name, None)
    env.update(extra)
    return env


def test_checked_in_completions_are_fresh() -> None:
    expected = gen.render()
    assert set(expected) == {"axme.bash", "_axme", "axme.fish"}
    stale = [
        name
        for name, content in expected.items()
        if not (COMPLETIONS / name).is_file() or (COMPLETIONS / name).read_text() != content
    ]
    assert not stale, f"stale completions {stale}: run python scripts/gen_completions.py"


@pytest.mark.parametrize("name", ["axme.bash", "_axme", "axme.fish"])
def test_each_script_calls_back_into_axme(name: str) -> None:
    text = (COMPLETIONS / name).read_text()
    assert COMPLETE_VAR in text
    assert "axme" in text.replace(COMPLETE_VAR, "")


def test_prog_name_is_the_console_script() -> None:
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert gen.prog_name() in scripts
    assert gen.complete_var(gen.prog_name()) == COMPLETE_VAR


def test_check_mode_names_stale_files_and_write_mode_fixes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "completions"
    assert gen.main(["--check"], directory=out) == 1  # all missing
    assert gen.main([], directory=out) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(gen.FILES.values())
    assert gen.main(["--check"], directory=out) == 0
    capsys.readouterr()

    (out / "_axme").write_text((out / "_axme").read_text() + "# edited\n")
    assert gen.main(["--check"], directory=out) == 1
    err = capsys.readouterr().err
    assert "_axme" in err
    assert "axme.bash" not in err and "axme.fish" not in err


def test_check_script_passes_on_the_repo(axme_home: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_completions.py"), "--check"],
        env=_env(axme_home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("shell", "name"), [("bash", "axme.bash"), ("zsh", "_axme"), ("fish", "axme.fish")]
)
def test_files_equal_what_the_program_prints(
    axme_home: Path, axme_launcher: Path, shell: str, name: str
) -> None:
    """`axme --show-completion SHELL` (what --install-completion writes) matches the file."""
    result = subprocess.run(
        [sys.executable, str(axme_launcher / "axme"), "--show-completion", shell],
        # Typer's switch to take the shell as an argument instead of detecting the parent shell.
        env=_env(axme_home, _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (COMPLETIONS / name).read_text()


@pytest.mark.parametrize(
    ("words", "cword", "offered"),
    [
        ("axme da", 1, {"daemon"}),
        ("axme daemon st", 2, {"start", "status", "stop"}),
    ],
)
def test_bash_protocol_against_the_real_program(
    axme_home: Path, axme_launcher: Path, words: str, cword: int, offered: set[str]
) -> None:
    # Typer keeps Click 7's instruction order: `complete_bash` (Click 8's `bash_complete` is
    # rejected with "Shell complete not supported."); the checked-in script sends the same.
    assert f"{COMPLETE_VAR}=complete_bash" in (COMPLETIONS / "axme.bash").read_text()
    result = subprocess.run(
        [sys.executable, str(axme_launcher / "axme")],
        env=_env(
            axme_home, COMP_WORDS=words, COMP_CWORD=str(cword), **{COMPLETE_VAR: "complete_bash"}
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == offered


def test_bash_sources_the_checked_in_script_and_completes(
    axme_home: Path, axme_launcher: Path
) -> None:
    """End to end: bash sources completions/axme.bash, its function runs `axme` from PATH."""
    bash = shutil.which("bash")
    assert bash, "bash is needed to check the bash completion script"
    script = (
        f"source {COMPLETIONS / 'axme.bash'}\n"
        "complete -p axme\n"
        "COMP_WORDS=(axme da); COMP_CWORD=1\n"
        "_axme_completion axme\n"
        'printf "reply:%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = _env(axme_home, PATH=os.pathsep.join([str(axme_launcher), os.environ["PATH"]]))
    result = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "-F _axme_completion axme" in result.stdout
    assert "reply:daemon" in result.stdout.splitlines(), result.stdout + result.stderr


@pytest.mark.parametrize(("shell", "name"), sorted(gen.FILES.items()))
def test_axme_completions_prints_the_script(axme_home: Path, shell: str, name: str) -> None:
    """What a wheel's user saves with `axme completions SHELL > FILE` is the checked-in file."""
    result = run_cli(axme_home, "completions", shell)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (COMPLETIONS / name).read_text()


def test_axme_completions_names_the_shells_it_knows(axme_home: Path) -> None:
    result = run_cli(axme_home, "completions", "tcsh")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: SHELL: one of bash, zsh, fish; got 'tcsh'"
