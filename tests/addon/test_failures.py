"""What the artist sees when things go wrong: one sentence from the operator, no traceback, the
scene untouched, and Blender ready for the next command."""

from bridge.service.launcher import free_port
from tests.addon.conftest import bridge_env
from tests.service.conftest import BridgeProcess

ATTEMPT = r"""
def attempt(operator, **kw):
    try:
        operator(**kw)
        return "ok"
    except RuntimeError as error:
        return str(error)
"""


def test_bridge_down_wrong_token_and_bad_prompts_each_give_one_sentence(blender, live_bridge):
    body = (
        ATTEMPT
        + r"""
url = sys.argv[-2]
report = {}
prefs.bridge_url = "http://127.0.0.1:" + sys.argv[-1]
report["down"] = attempt(bpy.ops.text_edit.connect)
prefs.bridge_url, prefs.token = url, "wrong-token-0123456789"
report["token"] = attempt(bpy.ops.text_edit.connect)
prefs.token = "pasted-token\nwith-a-line-break"
report["token_newline"] = attempt(bpy.ops.text_edit.connect)
prefs.token = ""
report["connected"] = attempt(bpy.ops.text_edit.connect)
settings = bpy.context.scene.text_edit
settings.grid, settings.source = 64, "PROMPTS"
settings.edit_prompt = "x" * 10240
report["long"] = attempt(bpy.ops.text_edit.edit)
settings.source, settings.instruction = "INSTRUCTION", "make it nicer"
report["no_part"] = attempt(bpy.ops.text_edit.edit)
settings.instruction = ""
report["empty_instruction"] = attempt(bpy.ops.text_edit.edit)
settings.source = "PROMPTS"
settings.head_params = "eye_colour"
report["params_syntax"] = attempt(bpy.ops.text_edit.new_head)
settings.head_params = "ear_wiggle=2"
report["params_unknown"] = attempt(bpy.ops.text_edit.new_head)
settings.head_params = ""
prefs.bridge_url = "ftp://somewhere"
report["scheme"] = attempt(bpy.ops.text_edit.connect)
prefs.bridge_url = "http://[::1"
report["unclosed_ipv6"] = attempt(bpy.ops.text_edit.connect)
prefs.bridge_url = "http://127.0.0.1:99999"
report["port"] = attempt(bpy.ops.text_edit.connect)
prefs.bridge_url = "http://192.0.2.1:8765"
report["remote_offline"] = attempt(bpy.ops.text_edit.connect)
report["busy"] = text_edit.properties.RUNNER.busy
report["objects"] = len(bpy.data.objects)
result(report)
"""
    )
    done, report = blender.run(body, live_bridge.url, str(free_port()), env=bridge_env(live_bridge))
    assert done.returncode == 0 and report, done.stdout[-2000:] + done.stderr[-2000:]
    assert "No answer from the bridge" in report["down"] and "python -m bridge serve" in report["down"]
    assert "401" in report["token"] and "token" in report["token"]
    assert report["connected"] == "ok"
    assert "10240 characters" in report["long"] and "at most 300" in report["long"]
    assert "names no part" in report["no_part"] and "make the eyes green" in report["no_part"]
    assert "instruction prompt is empty" in report["empty_instruction"]
    assert "not an http address" in report["scheme"]
    assert "not an http address" in report["unclosed_ipv6"] and "not an http address" in report["port"]
    assert "line breaks" in report["token_newline"]
    assert "write name=value" in report["params_syntax"]
    assert "400" in report["params_unknown"] and "ear_wiggle" in report["params_unknown"]
    assert "online access is off" in report["remote_offline"]
    for message in report.values():
        if isinstance(message, str):
            assert "Traceback" not in message and message.count("\n") <= 1, message
    assert report["busy"] is False


def test_bridge_killed_mid_job_keeps_the_head_and_blender_usable(blender, tmp_path):
    bridge = BridgeProcess(tmp_path / "killed").start()
    body = (
        ATTEMPT
        + r"""
import os, signal, threading, time, urllib.request
url, pid = sys.argv[-2], int(sys.argv[-1])
prefs.bridge_url = url
token = open(os.environ["TEXT_EDIT_CONFIG_DIR"] + "/token").read().strip()
bpy.ops.wm.read_homefile(use_empty=True)
settings = bpy.context.scene.text_edit
settings.grid, settings.texture_size, settings.seed = 64, "512", 2
report = {"connect": attempt(bpy.ops.text_edit.connect), "new": attempt(bpy.ops.text_edit.new_head)}

def kill_when_running():
    while True:
        request = urllib.request.Request(url + "/v1/jobs", headers={"Authorization": "Bearer " + token})
        jobs = json.load(urllib.request.urlopen(request))["jobs"]
        if any(j["kind"] == "edit" and j["state"] == "running" for j in jobs[1:]):
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.02)

threading.Thread(target=kill_when_running, daemon=True).start()
settings.source, settings.module = "LIBRARY", "blue_eyes"
report["killed"] = attempt(bpy.ops.text_edit.edit)
head = text_edit.importer.find_head(bpy.context.scene, "seed 2")
report["head_kept"] = head is not None and json.loads(head["text_edit_stack"]) == []
report["busy"] = text_edit.properties.RUNNER.busy
report["after"] = attempt(bpy.ops.text_edit.connect)
result(report)
"""
    )
    try:
        done, report = blender.run(body, bridge.url, str(bridge.process.pid), env=bridge_env(bridge))
    finally:
        bridge.stop()
    assert done.returncode == 0 and report, done.stdout[-2000:] + done.stderr[-2000:]
    assert report["connect"] == "ok" and report["new"] == "ok"
    assert "No answer from the bridge" in report["killed"], report["killed"]
    assert report["head_kept"] and report["busy"] is False
    assert "No answer from the bridge" in report["after"]


def test_head_properties_changed_by_hand_give_one_sentence(blender):
    """The custom properties on a head object are the artist's to edit: a stack that is not one,
    a strength that is text, a seed that is not a number gave tracebacks in the panel, in polls
    and in Edit."""
    body = (
        ATTEMPT
        + r"""
importer = importlib.import_module('bl_ext.user_default.text_edit.addon.importer')
operators = importlib.import_module('bl_ext.user_default.text_edit.addon.operators')
bpy.ops.wm.read_homefile(use_empty=True)
mesh = bpy.data.meshes.new("head")
obj = bpy.data.objects.new("head 3", mesh)
bpy.context.scene.collection.objects.link(obj)
bpy.context.view_layer.objects.active = obj
obj[importer.HEAD_KEY], obj["text_edit_seed"] = "seed 3", 3
report = {}
for name, stack in (("junk", "junk"), ("number", 5), ("list_of_int", "[1]"), ("text_strength", '[{"module": "blue_eyes", "strength": "x"}]')):
    obj[importer.STACK] = stack
    report[name] = {"drawn": importer.stack_or_none(obj), "poll": bpy.ops.text_edit.remove_last.poll(), "edit": attempt(bpy.ops.text_edit.edit)}
obj[importer.STACK] = '[{"module": "blue_eyes", "strength": 0.5}]'
report["good"] = importer.stack_or_none(obj)
obj["text_edit_seed"] = "abc"
report["seed"] = attempt(bpy.ops.text_edit.edit)
obj["text_edit_seed"], obj["text_edit_params"] = 3, "{"
report["params"] = attempt(bpy.ops.text_edit.edit)
result(report)
"""
    )
    done, report = blender.run(body)
    assert done.returncode == 0 and report, done.stdout[-2000:] + done.stderr[-2000:]
    for name in ("junk", "number", "list_of_int", "text_strength"):
        case = report[name]
        assert case["drawn"] is None and case["poll"] is False, (name, case)
        assert "edit stack stored on head 3" in case["edit"] and "damaged" in case["edit"] and "Traceback" not in case["edit"], case
    assert report["good"] == [{"module": "blue_eyes", "strength": 0.5}]
    for name in ("seed", "params"):
        assert "head stored on head 3" in report[name] and "Traceback" not in report[name], report[name]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
