// The pure parts of the SDK: the seq/epoch rule and the back-off schedule.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BoardState, backoffDelay } from "../scoreboard.js";

const frame = (type, epoch, seq) => ({ type, channel: "scoreboard_updates", epoch, seq, top: [] });

function at(epoch, seq) {
  const state = new BoardState();
  state.apply(frame("snapshot", epoch, seq));
  return state;
}

test("the first snapshot is taken as truth", () => {
  assert.equal(new BoardState().judge(frame("snapshot", 7, 40)), "apply");
});

test("an update before any snapshot asks for one", () => {
  assert.equal(new BoardState().judge(frame("update", 7, 40)), "resync");
});

test("the next seq within the epoch applies", () => {
  assert.equal(at(7, 40).judge(frame("update", 7, 41)), "apply");
});

test("an old or repeated seq is ignored", () => {
  assert.equal(at(7, 40).judge(frame("update", 7, 40)), "stale");
  assert.equal(at(7, 40).judge(frame("update", 7, 12)), "stale");
  assert.equal(at(7, 40).judge(frame("snapshot", 7, 39)), "stale");
});

test("an update that skips a seq is a gap that asks to resubscribe", () => {
  assert.equal(at(7, 40).judge(frame("update", 7, 42)), "resync");
});

test("a newer snapshot in the same epoch applies even across a gap", () => {
  assert.equal(at(7, 40).judge(frame("snapshot", 7, 90)), "apply");
});

test("a new epoch: its update waits for a snapshot, its snapshot is the truth", () => {
  const state = at(7, 40);
  assert.equal(state.judge(frame("update", 8, 1)), "resync");
  assert.equal(state.judge(frame("snapshot", 8, 0)), "apply");
  state.apply(frame("snapshot", 8, 0));
  assert.deepEqual(state.position, { epoch: 8, seq: 0 });
  assert.equal(state.judge(frame("update", 8, 1)), "apply");
});

test("a gap asks once, waits, and after the patience takes the next message as truth", () => {
  const state = new BoardState({ patienceMs: 100 });
  state.apply(frame("snapshot", 7, 40));
  assert.deepEqual(state.receive(frame("update", 7, 42), 1000), { apply: false, resync: true });
  assert.deepEqual(state.receive(frame("update", 7, 43), 1050), { apply: false, resync: false });
  assert.deepEqual(state.receive(frame("update", 7, 44), 1100), { apply: true, resync: false });
  state.apply(frame("update", 7, 44));
  assert.equal(state.resyncSince, null);
  assert.deepEqual(state.receive(frame("update", 7, 46), 2000), { apply: false, resync: true });
});

test("the replay closing the gap ends the wait", () => {
  const state = new BoardState({ patienceMs: 100 });
  state.apply(frame("snapshot", 7, 40));
  state.receive(frame("update", 7, 42), 1000);
  assert.deepEqual(state.receive(frame("update", 7, 41), 1010), { apply: true, resync: false });
  state.apply(frame("update", 7, 41));
  assert.deepEqual(state.receive(frame("update", 7, 42), 1020), { apply: true, resync: false });
});

test("back-off doubles from the initial step up to the cap, jitter within half a step", () => {
  const options = { initialMs: 100, maxMs: 1000, factor: 2 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 10].map((attempt) => backoffDelay(attempt, options, () => 1)),
    [100, 200, 400, 800, 1000, 1000],
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4, 10].map((attempt) => backoffDelay(attempt, options, () => 0)),
    [50, 100, 200, 400, 500, 500],
  );
});
