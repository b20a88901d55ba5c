"""Shell rc blocks: zsh ~/.zshenv, bash ~/.bashrc (Linux) or
~/.bash_profile (macOS), fish conf.d; user content around the block kept,
replaced in place, mode kept, written only for shells in PATH, removed
byte-exactly."""
import os
import subprocess

import pytest

from osfixtures import osenv  # noqa: F401

BEGIN = "# >>> halton-meter >>>\n"
END = "# <<< halton-meter <<<\n"


def block_of(text):
    b = text.index(BEGIN)
    e = text.index(END) + len(END)
    return b, e


@pytest.mark.parametrize("shell,platform,rel", [
    ("zsh", "linux", ".zshenv"),
    ("bash", "linux", ".bashrc"),
    ("bash", "darwin", ".bash_profile"),
])
def test_block_between_user_content(osenv, shell, platform,  # noqa: F811
                                    rel):
    o = osenv
    o.add_shells(shell)
    rc = o.home / rel
    rc.write_text("# before\nalias ll='ls -l'\n")
    rc.chmod(0o600)
    r = o.hm("init", "--apps", platform=platform,
             extra_env={"FAKE_NO_USER_BUS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    text = rc.read_text()
    assert text.startswith("# before\nalias ll='ls -l'\n" + BEGIN)
    assert text.endswith(END)
    # The user adds content after the block; a new listen address
    # changes the block, which is replaced in place.
    rc.write_text(text + "# after\nexport FOO=1\n")
    r = o.hm("init", "--apps", platform=platform,
             extra_env={"FAKE_NO_USER_BUS": "1",
                        "HALTON_METER_LISTEN": "127.0.0.1:9999"})
    assert r.returncode == 0, r.stdout + r.stderr
    text = rc.read_text()
    b, e = block_of(text)
    assert text[:b] == "# before\nalias ll='ls -l'\n"
    assert text[e:] == "# after\nexport FOO=1\n"
    assert "export HTTPS_PROXY='http://127.0.0.1:9999'\n" in text[b:e]
    assert "8081" not in text
    assert text.count(BEGIN) == 1
    assert oct(rc.stat().st_mode & 0o777) == oct(0o600)
    # A POSIX shell sourcing the file gets the variables.
    out = subprocess.run(["/bin/sh", "-c", '. "$1"; printf "%s|%s" '
                          '"$HTTPS_PROXY" "$NODE_EXTRA_CA_CERTS"', "sh",
                          str(rc)], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"})
    assert out.stdout == "http://127.0.0.1:9999|%s" % (
        o.home / ".halton-meter" / "ca.pem")
    assert o.hm("uninstall", platform=platform).returncode == 0
    assert rc.read_text() == ("# before\nalias ll='ls -l'\n"
                              "# after\nexport FOO=1\n")
    assert oct(rc.stat().st_mode & 0o777) == oct(0o600)


def test_fish_conf_d_file(osenv):  # noqa: F811
    o = osenv
    o.add_shells("fish")
    r = o.hm("init", "--apps", platform="darwin")
    assert r.returncode == 0, r.stdout + r.stderr
    f = o.home / ".config/fish/conf.d/halton-meter.fish"
    text = f.read_text()
    assert text.startswith(BEGIN) and text.endswith(END)
    assert "set -gx HTTPS_PROXY 'http://127.0.0.1:8081'\n" in text
    assert "set -gx NODE_USE_ENV_PROXY '1'\n" in text
    assert not (o.home / ".zshenv").exists()
    assert not (o.home / ".bash_profile").exists()
    assert o.hm("uninstall", platform="darwin").returncode == 0
    assert not f.exists()


def test_only_shells_in_path(osenv):  # noqa: F811
    o = osenv
    r = o.hm("init", "--apps", platform="linux",
             extra_env={"FAKE_NO_USER_BUS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "none of zsh, bash, fish in PATH" in r.stdout
    for rel in (".zshenv", ".bashrc", ".bash_profile",
                ".config/fish/conf.d/halton-meter.fish"):
        assert not (o.home / rel).exists(), rel


def test_no_final_newline_and_symlinked_rc(osenv):  # noqa: F811
    o = osenv
    o.add_shells("zsh", "bash")
    (o.home / ".bashrc").write_bytes(b"PS1='$ '")
    dot = o.home / "dotfiles"
    dot.mkdir()
    (dot / "zshenv").write_text("setopt no_beep\n")
    os.symlink(dot / "zshenv", o.home / ".zshenv")
    r = o.hm("init", "--apps", platform="linux",
             extra_env={"FAKE_NO_USER_BUS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.path.islink(o.home / ".zshenv")
    assert BEGIN in (dot / "zshenv").read_text()
    assert (o.home / ".bashrc").read_text().startswith("PS1='$ '\n" + BEGIN)
    assert o.hm("uninstall", platform="linux").returncode == 0
    assert (o.home / ".bashrc").read_bytes() == b"PS1='$ '"
    assert (dot / "zshenv").read_text() == "setopt no_beep\n"
    assert os.path.islink(o.home / ".zshenv")


def test_unterminated_block_is_not_touched(osenv):  # noqa: F811
    o = osenv
    o.add_shells("bash")
    rc = o.home / ".bashrc"
    rc.write_text("x\n" + BEGIN + "half a block\n")
    r = o.hm("init", "--apps", platform="linux",
             extra_env={"FAKE_NO_USER_BUS": "1"})
    assert r.returncode == 1
    assert "has no '# <<< halton-meter <<<' line after it" in r.stdout
    assert rc.read_text() == "x\n" + BEGIN + "half a block\n"
