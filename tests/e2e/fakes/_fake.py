"""Recording fakes of the OS commands halton-meter runs.

Each fake (security, launchctl, networksetup, scutil, systemctl,
update-ca-certificates, update-ca-trust, trust, certutil, keytool,
gsettings, python3) is a tiny script that calls main() with its name.
main() appends [name, *args] as one JSON line to $FAKE_STATE/calls.jsonl
and keeps what the real tool would remember in $FAKE_STATE/state.json,
so `launchctl getenv` answers what `setenv` stored, `certutil -V` finds
what `-A` added, and so on.  Without FAKE_STATE a fake refuses to run.

Knobs (environment): FAKE_NO_USER_BUS (systemctl --user fails like in a
container), FAKE_SECURITY_FAIL (add-trusted-cert fails like headless
macOS), FAKE_NETWORKSETUP_DENY (exit 14, admin privileges needed),
FAKE_PYTHON_HANG (python3 never answers).
"""
import base64
import hashlib
import json
import os
import sys
import time


def _paths():
    d = os.environ.get("FAKE_STATE")
    if not d:
        sys.stderr.write("fake: FAKE_STATE is not set; refusing to run\n")
        sys.exit(99)
    return os.path.join(d, "calls.jsonl"), os.path.join(d, "state.json")


def load():
    _, st = _paths()
    try:
        with open(st) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save(state):
    _, st = _paths()
    tmp = st + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    os.replace(tmp, st)


def cert_sha1(path):
    """SHA-1 of the first certificate in a PEM file, upper-case hex."""
    with open(path) as f:
        text = f.read()
    b = text.index("-----BEGIN CERTIFICATE-----")
    e = text.index("-----END CERTIFICATE-----", b)
    body = "".join(text[b + 27:e].split())
    return hashlib.sha1(base64.b64decode(body)).hexdigest().upper()


def out(s):
    sys.stdout.write(s)


def err(s):
    sys.stderr.write(s)


def opt(args, flag, default=None):
    if flag in args:
        i = args.index(flag)
        if i + 1 < len(args):
            return args[i + 1]
    return default


# ------------------------------------------------------------ launchctl

def launchctl(args, state):
    s = state.setdefault("launchctl", {"env": {}, "loaded": []})
    verb = args[0] if args else ""
    if verb == "getenv":
        if args[1] in s["env"]:
            out(s["env"][args[1]] + "\n")
        return 0
    if verb == "setenv":
        s["env"][args[1]] = args[2]
        return 0
    if verb == "unsetenv":
        s["env"].pop(args[1], None)
        return 0
    if verb == "print":
        label = args[1].split("/")[-1]
        if label in s["loaded"]:
            out("%s = {\n\tstate = running\n}\n" % args[1])
            return 0
        err("Could not find service \"%s\" in domain for port\n" % label)
        return 113
    if verb == "bootstrap":
        label = os.path.basename(args[2])
        if label.endswith(".plist"):
            label = label[:-6]
        if not os.path.isfile(args[2]):
            err("Bootstrap failed: 2: No such file or directory\n")
            return 2
        if label in s["loaded"]:
            err("Bootstrap failed: 5: Input/output error\n")
            return 5
        s["loaded"].append(label)
        return 0
    if verb == "bootout":
        label = args[1].split("/")[-1]
        if label not in s["loaded"]:
            err("Boot-out failed: 3: No such process\n")
            return 3
        s["loaded"].remove(label)
        return 0
    if verb == "kickstart":
        label = args[-1].split("/")[-1]
        return 0 if label in s["loaded"] else 113
    if verb in ("enable", "disable"):
        return 0
    err("launchctl: unknown subcommand %s\n" % verb)
    return 64


# ------------------------------------------------------------- security

def security(args, state):
    s = state.setdefault("security", {"trusted": [], "keychain": []})
    verb = args[0] if args else ""
    if verb == "verify-cert":
        sha = cert_sha1(opt(args, "-c"))
        if sha in s["trusted"]:
            out("...certificate verification successful.\n")
            return 0
        out("Cert Verify Result: CSSMERR_TP_NOT_TRUSTED\n")
        return 1
    if verb == "add-trusted-cert":
        if os.environ.get("FAKE_SECURITY_FAIL"):
            err("SecTrustSettingsSetTrustSettings: errSecInternalComponent"
                "\n")
            return 1
        sha = cert_sha1(args[-1])
        if sha not in s["trusted"]:
            s["trusted"].append(sha)
        if sha not in s["keychain"]:
            s["keychain"].append(sha)
        return 0
    if verb == "remove-trusted-cert":
        sha = cert_sha1(args[-1])
        if sha not in s["trusted"]:
            err("SecTrustSettingsRemoveTrustSettings: The specified item "
                "could not be found in the keychain.\n")
            return 1
        s["trusted"].remove(sha)
        return 0
    if verb == "delete-certificate":
        sha = opt(args, "-Z")
        if sha not in s["keychain"]:
            err("Unable to delete certificate matching \"%s\"\n" % sha)
            return 1
        s["keychain"].remove(sha)
        return 0
    err("security: unknown command %s\n" % verb)
    return 1


# --------------------------------------------------------- networksetup

def _service(s, name):
    for svc in s["services"]:
        if svc["name"] == name:
            return svc
    return None


def networksetup(args, state):
    s = state.setdefault("networksetup", {"services": []})
    verb = args[0] if args else ""
    if verb == "-listallnetworkservices":
        out("An asterisk (*) denotes that a network service is disabled.\n")
        for svc in s["services"]:
            out(("*" if svc.get("disabled") else "") + svc["name"] + "\n")
        return 0
    svc = _service(s, args[1]) if len(args) > 1 else None
    if svc is None:
        err("** Error: The parameters were not valid.\n")
        return 4
    if verb == "-getsecurewebproxy":
        out("Enabled: %s\nServer: %s\nPort: %s\n"
            "Authenticated Proxy Enabled: 0\n"
            % (svc["enabled"], svc["server"], svc["port"]))
        return 0
    if os.environ.get("FAKE_NETWORKSETUP_DENY"):
        err("** Error: Command requires admin privileges.\n")
        return 14
    if verb == "-setsecurewebproxy":
        svc["server"], svc["port"] = args[2], args[3]
        return 0
    if verb == "-setsecurewebproxystate":
        svc["enabled"] = "Yes" if args[2] == "on" else "No"
        return 0
    err("networksetup: unknown option %s\n" % verb)
    return 4


def scutil(args, state):
    s = state.get("networksetup", {"services": []})
    if args != ["--proxy"]:
        return 64
    out("<dictionary> {\n")
    for svc in s["services"]:
        if svc.get("disabled"):
            continue
        out("  HTTPSEnable : %d\n" % (svc["enabled"] == "Yes"))
        if svc["server"]:
            out("  HTTPSPort : %s\n  HTTPSProxy : %s\n"
                % (svc["port"], svc["server"]))
        break
    out("}\n")
    return 0


# ------------------------------------------------------------ systemctl

def systemctl(args, state):
    s = state.setdefault("systemctl", {"enabled": [], "active": []})
    if os.environ.get("FAKE_NO_USER_BUS"):
        err("Failed to connect to bus: No medium found\n")
        return 1
    a = [x for x in args if x != "--user"]
    verb = a[0] if a else ""
    unit = a[-1] if len(a) > 1 else ""
    if verb == "daemon-reload":
        return 0
    if verb == "enable":
        if unit not in s["enabled"]:
            s["enabled"].append(unit)
        if "--now" in a and unit not in s["active"]:
            s["active"].append(unit)
        return 0
    if verb == "disable":
        if unit in s["enabled"]:
            s["enabled"].remove(unit)
        if "--now" in a and unit in s["active"]:
            s["active"].remove(unit)
        return 0
    if verb == "is-enabled":
        if unit in s["enabled"]:
            out("enabled\n")
            return 0
        out("disabled\n")
        return 1
    if verb == "is-active":
        if unit in s["active"]:
            out("active\n")
            return 0
        out("inactive\n")
        return 3
    if verb == "restart":
        if unit not in s["active"]:
            s["active"].append(unit)
        return 0
    err("systemctl: unknown verb %s\n" % verb)
    return 1


# ------------------------------------------------------- trust stores

def _anchor_dir_state(state, name, rel, ext, bundle_rel):
    """Like the real tools: the anchors in rel are compiled into the
    system bundle (bundle_rel).  The bundle's content before the first run
    is remembered, so with no anchors left it is restored byte for byte
    (or removed, if there was none)."""
    root = os.environ.get("HALTON_METER_SYSROOT", "")
    d = os.path.join(root, rel)
    names = sorted(n for n in os.listdir(d) if n.endswith(ext)) \
        if os.path.isdir(d) else []
    st = state.setdefault(name, {})
    st["anchors"] = names
    bundle = os.path.join(root, bundle_rel)
    if "bundle_base" not in st:
        st["bundle_base"] = (open(bundle).read()
                             if os.path.exists(bundle) else None)
    base = st["bundle_base"]
    if not names:
        if base is None:
            if os.path.exists(bundle):
                os.unlink(bundle)
        else:
            with open(bundle, "w") as f:
                f.write(base)
        del st["bundle_base"]
        return 0
    os.makedirs(os.path.dirname(bundle), exist_ok=True)
    with open(bundle, "w") as f:
        f.write(base or "")
        for n in names:
            f.write(open(os.path.join(d, n)).read())
    return 0


def update_ca_certificates(args, state):
    return _anchor_dir_state(state, "update-ca-certificates",
                             "usr/local/share/ca-certificates", ".crt",
                             "etc/ssl/certs/ca-certificates.crt")


def update_ca_trust(args, state):
    return _anchor_dir_state(state, "update-ca-trust",
                             "etc/pki/ca-trust/source/anchors", "",
                             "etc/pki/tls/certs/ca-bundle.crt")


def trust(args, state):
    s = state.setdefault("trust", {"anchors": []})
    if args[:2] == ["anchor", "--store"]:
        sha = cert_sha1(args[2])
        if sha not in s["anchors"]:
            s["anchors"].append(sha)
        return 0
    if args[:2] == ["anchor", "--remove"]:
        sha = cert_sha1(args[2])
        if sha not in s["anchors"]:
            err("p11-kit: couldn't find certificate to remove\n")
            return 1
        s["anchors"].remove(sha)
        return 0
    return 2


def certutil(args, state):
    s = state.setdefault("certutil", {})
    db = opt(args, "-d")
    nick = opt(args, "-n")
    have = s.get(db, [])
    if "-V" in args:
        if nick in have:
            out("certutil: certificate is valid\n")
            return 0
        err("certutil: could not find certificate named \"%s\": "
            "PR_FILE_NOT_FOUND_ERROR\n" % nick)
        return 255
    if "-A" in args:
        if nick not in have:
            s[db] = have + [nick]
        return 0
    if "-D" in args:
        if nick not in have:
            err("certutil: could not find certificate named \"%s\"\n" % nick)
            return 255
        have.remove(nick)
        if not have:
            del s[db]
        return 0
    return 1


def keytool(args, state):
    s = state.setdefault("keytool", {})
    ks = opt(args, "-keystore")
    alias = opt(args, "-alias")
    have = s.get(ks, [])
    if "-list" in args:
        if alias in have:
            out("%s, trustedCertEntry\n" % alias)
            return 0
        out("keytool error: java.lang.Exception: Alias <%s> does not exist\n"
            % alias)
        return 1
    if "-importcert" in args:
        if alias in have:
            out("keytool error: java.lang.Exception: Certificate not "
                "imported, alias <%s> already exists\n" % alias)
            return 1
        s[ks] = have + [alias]
        out("Certificate was added to keystore\n")
        return 0
    if "-delete" in args:
        if alias not in have:
            out("keytool error: java.lang.Exception: Alias <%s> does not "
                "exist\n" % alias)
            return 1
        have.remove(alias)
        if not have:
            del s[ks]
        return 0
    return 1


def gsettings(args, state):
    s = state.setdefault("gsettings", {})
    if len(args) >= 3 and args[0] == "get":
        k = args[1] + " " + args[2]
        if k not in s:
            err("No such schema \"%s\"\n" % args[1])
            return 1
        out(s[k] + "\n")
        return 0
    if len(args) >= 4 and args[0] == "set":
        k = args[1] + " " + args[2]
        v = args[3]
        if not (v.isdigit() or v.startswith("'")):
            v = "'%s'" % v
        s[k] = v
        return 0
    return 1


def python3(args, state):
    code = args[1] if len(args) > 1 and args[0] == "-c" else ""
    if "certifi" not in code:
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + args)
    if os.environ.get("FAKE_PYTHON_HANG"):
        time.sleep(60)
    m = state.get("python", {}).get("certifi", {})
    me = os.path.abspath(sys.argv[0])
    where = m.get(me, m.get(os.path.basename(me)))
    if where is None:
        err("Traceback (most recent call last):\n"
            "ModuleNotFoundError: No module named 'certifi'\n")
        return 1
    out(where + "\n")
    return 0


TOOLS = {
    "launchctl": launchctl, "security": security,
    "networksetup": networksetup, "scutil": scutil, "systemctl": systemctl,
    "update-ca-certificates": update_ca_certificates,
    "update-ca-trust": update_ca_trust, "trust": trust,
    "certutil": certutil, "keytool": keytool, "gsettings": gsettings,
    "python3": python3,
}


def main(name):
    if name.startswith("python"):
        name = "python3"
    calls, _ = _paths()
    args = sys.argv[1:]
    with open(calls, "a") as f:
        f.write(json.dumps([name] + args) + "\n")
    state = load()
    rc = TOOLS[name](args, state)
    save(state)
    sys.stdout.flush()
    sys.exit(rc)
