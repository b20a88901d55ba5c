"""The command line: help, version, usage errors, config errors."""
import os
import re
import stat

from conftest import ROOT


def test_help_lists_commands(hm):
    r = hm("--help")
    assert r.returncode == 0
    assert r.stdout.startswith("usage: halton-meter <command>")
    for name in ("help", "version", "config"):
        assert re.search(r"^  %s\s" % name, r.stdout, re.M), name


def test_help_command(hm):
    r = hm("help", "config")
    assert r.returncode == 0
    assert r.stdout.startswith("usage: halton-meter config [--check]")
    r2 = hm("config", "--help")
    assert r2.returncode == 0 and r2.stdout == r.stdout


def test_version_matches_version_file_and_man_page(hm):
    version = (ROOT / "VERSION").read_text().strip()
    r = hm("--version")
    assert r.returncode == 0
    assert r.stdout == "halton-meter %s\n" % version
    assert hm("version").stdout == r.stdout
    man = (ROOT / "man" / "halton-meter.1").read_text()
    assert ".Os halton-meter %s" % version in man


def test_no_arguments_is_usage_error(hm):
    r = hm()
    assert r.returncode == 2
    assert "usage: halton-meter" in r.stderr
    assert r.stdout == ""


def test_unknown_command_exits_2(hm):
    r = hm("frobnicate")
    assert r.returncode == 2
    assert "halton-meter: unknown command 'frobnicate'" in r.stderr


def test_unknown_option_exits_2(hm):
    r = hm("--frobnicate")
    assert r.returncode == 2
    assert "unknown option '--frobnicate'" in r.stderr
    r = hm("config", "--frobnicate")
    assert r.returncode == 2
    assert r.stderr.startswith(
        "halton-meter: config: unknown option '--frobnicate'\n")
    assert "usage: halton-meter config" in r.stderr


def test_help_unknown_command_exits_2(hm):
    r = hm("help", "nope")
    assert r.returncode == 2
    assert "halton-meter: help: unknown command 'nope'" in r.stderr


def test_config_defaults_without_file(hm, home):
    r = hm("config")
    assert r.returncode == 0, r.stderr
    assert "listen = 127.0.0.1:8081\n" in r.stdout
    assert "db = %s/.halton-meter/meter.db\n" % home in r.stdout


def write_config(home, text):
    d = home / ".halton-meter"
    d.mkdir(mode=0o700, exist_ok=True)
    (d / "config").write_text(text)
    return d / "config"


def test_config_good_file(hm, home):
    write_config(home, "# comment\n\nlisten = 127.0.0.1:9999\n"
                 "intercept = llm.example.com, *.corp.example\n"
                 "intercept = other.example.org  # trailing comment\n"
                 "log_level = debug\n")
    r = hm("config")
    assert r.returncode == 0, r.stderr
    assert "listen = 127.0.0.1:9999\n" in r.stdout
    assert "log_level = debug\n" in r.stdout
    assert ("intercept = llm.example.com\nintercept = *.corp.example\n"
            "intercept = other.example.org\n") in r.stdout
    assert hm("config", "--check").returncode == 0


def test_config_bad_line_names_file_and_line(hm, home):
    path = write_config(home, "listen = 127.0.0.1:8081\n\nbogus_key = 1\n")
    r = hm("config")
    assert r.returncode == 1
    assert r.stderr == ("halton-meter: config: %s:3: unknown key "
                        "'bogus_key'\n" % path)


def test_config_bad_values(hm, home):
    cases = [
        ("listen = nowhere\n", "1: listen: 'nowhere' is not HOST:PORT"),
        ("log_level = loud\n", "1: log_level: 'loud' is not one of error, "
         "warn, info, debug"),
        ("\njust some words\n", "2: expected 'key = value', got "
         "'just some words'"),
        ("allow_remote = perhaps\n", "1: allow_remote: 'perhaps' is not "
         "yes or no"),
        ("intercept = bad_host!\n", "1: intercept: 'bad_host!' is not a "
         "host name"),
        ("db =\n", "1: db: missing value"),
    ]
    for text, want in cases:
        path = write_config(home, text)
        r = hm("config", "--check")
        assert r.returncode == 1, text
        assert ("%s:%s" % (path, want)) in r.stderr, (text, r.stderr)


def test_listen_env_overrides_config(hm, home):
    write_config(home, "listen = 127.0.0.1:9999\n")
    r = hm("config", extra_env={"HALTON_METER_LISTEN": "127.0.0.1:7777"})
    assert "listen = 127.0.0.1:7777\n" in r.stdout
    r = hm("config", extra_env={"HALTON_METER_LISTEN": "garbage"})
    assert r.returncode == 1
    assert "HALTON_METER_LISTEN: listen: 'garbage' is not HOST:PORT" in r.stderr


def test_man_page_documents_every_command(hm):
    """Every registered command has an entry in the man page's list."""
    man = (ROOT / "man" / "halton-meter.1").read_text()
    names = re.findall(r"^  (\S+)\s", hm("--help").stdout, re.M)
    assert len(names) >= 3
    for name in names:
        assert re.search(r"^(\.It )?\.?Cm %s\b" % re.escape(name), man,
                         re.M) or re.search(
            r"^\.It Cm %s\b" % re.escape(name), man, re.M), name


def test_man_page_renders(tmp_path):
    import shutil
    import subprocess
    if shutil.which("man") is None:
        # groff's nroff renders mdoc too; one of the two is needed.
        cmd = ["nroff", "-mandoc", str(ROOT / "man" / "halton-meter.1")]
    else:
        cmd = ["man", "-l", str(ROOT / "man" / "halton-meter.1")]
    r = subprocess.run(cmd, capture_output=True, text=True,
                       env={**os.environ, "MANWIDTH": "80", "PAGER": "cat"})
    assert r.returncode == 0, r.stderr
    assert "halton-meter" in r.stdout and "SYNOPSIS" in r.stdout
