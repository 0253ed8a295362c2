import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { hostname } from "node:os";
import { test } from "node:test";
import { instanceMayBeAlive, newInstanceId, processStartTicks } from "./instance.ts";

test("instance ids: this process is alive; a finished process, a reused pid and a malformed id are gone; other hosts cannot be told", () => {
  const self = newInstanceId();
  assert.match(self, new RegExp(`^inst_[0-9a-f]{12}@.+:${process.pid}:(\\d+|-)$`));
  assert.notEqual(newInstanceId(), self, "each start gets its own id");
  assert.equal(instanceMayBeAlive(self), true);

  const finished = spawnSync(process.execPath, ["-e", ""]).pid;
  assert.equal(instanceMayBeAlive(`inst_00@${hostname()}:${finished}:-`), false);
  if (processStartTicks(process.pid) !== null) {
    // Same pid, another start time: the pid was reused by a newer process.
    assert.equal(instanceMayBeAlive(`inst_00@${hostname()}:${process.pid}:1`), false);
  }
  assert.equal(instanceMayBeAlive(`inst_00@another-host.example:${finished}:-`), true);
  assert.equal(instanceMayBeAlive("srv-1"), false);
});
