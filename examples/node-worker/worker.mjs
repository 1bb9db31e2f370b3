#!/usr/bin/env node
// A dependency-free orch8 worker for Node.js 20+ (built-in fetch and AbortController).
//
// It speaks orch8's external-task protocol (wire-compatible with Orch8's):
//   POST /workers/tasks/poll            {handler_name, worker_id, limit, wait_ms}  -> [task]
//   POST /workers/tasks/{id}/heartbeat  {worker_id, claim_epoch}
//   POST /workers/tasks/{id}/complete   {worker_id, claim_epoch, output}
//   POST /workers/tasks/{id}/fail       {worker_id, claim_epoch, message, retryable}
//
//   ORCH8_URL=http://127.0.0.1:8080 node examples/node-worker/worker.mjs
//
// Settings (environment): ORCH8_URL, ORCH8_WORKER_ID, ORCH8_HANDLERS (comma list, default:
// every handler below), ORCH8_CONCURRENCY (10), ORCH8_POLL_WAIT_MS (10000),
// ORCH8_HEARTBEAT_MS (15000), ORCH8_GRACE_MS (30000), ORCH8_API_KEY, ORCH8_TENANT_ID.
// One JSON line per event goes to stdout; diagnostics go to stderr.

import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";

const env = process.env;
const BASE = (env.ORCH8_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
const WORKER_ID = env.ORCH8_WORKER_ID || `node-${os.hostname()}-${process.pid}`;
const CONCURRENCY = positive(env.ORCH8_CONCURRENCY, 10);
const POLL_WAIT_MS = positive(env.ORCH8_POLL_WAIT_MS, 10_000);
const HEARTBEAT_MS = positive(env.ORCH8_HEARTBEAT_MS, 15_000);
const GRACE_MS = positive(env.ORCH8_GRACE_MS, 30_000);
const BACKOFF_START_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

/** Throw one of these from a handler to choose how the attempt fails. */
export class RetryableError extends Error {
  retryable = true;
}
export class PermanentError extends Error {
  retryable = false;
}

// ---- handlers: plain async functions (task, {signal}) -> output object ----------------
// `signal` aborts when the claim is lost or the worker is forced to stop; pass it on to
// fetch() and timers so abandoned work ends promptly. An object output is merged into
// the instance's context.data.
const HANDLERS = {
  async send_email(task, { signal }) {
    await sleep(50, undefined, { signal }); // stand-in for the SMTP call
    return {
      message_id: `msg-${task.id}`,
      to: task.params?.to ?? null,
      sent_by: WORKER_ID,
    };
  },
};

// ---- the protocol -----------------------------------------------------------------------

const headers = { "content-type": "application/json", accept: "application/json" };
if (env.ORCH8_API_KEY) headers["x-api-key"] = env.ORCH8_API_KEY;
if (env.ORCH8_TENANT_ID) headers["x-tenant-id"] = env.ORCH8_TENANT_ID;

/** POST JSON; resolves to {status, body}. status 0 means no answer (network error). */
async function post(path, body, { signal, timeoutMs = 30_000 } = {}) {
  const timeout = AbortSignal.timeout(timeoutMs);
  const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
  try {
    const resp = await fetch(BASE + path, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      signal: both,
    });
    const text = await resp.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = { error: text };
    }
    return { status: resp.status, body: parsed };
  } catch (err) {
    if (signal?.aborted) throw err; // our own cancellation: let the caller see it
    return { status: 0, body: { error: String(err?.message ?? err) } };
  }
}

const transient = (status) => status === 0 || status === 429 || status >= 500;

// ---- slots: running tasks plus slots reserved by an in-flight poll -----------------------

let inUse = 0;
let freed = null; // resolves when a slot is released
function release(n = 1) {
  inUse -= n;
  if (n > 0 && freed) {
    freed.resolve();
    freed = null;
  }
}
async function reserve(most) {
  while (inUse >= CONCURRENCY) {
    if (!freed) {
      let resolve;
      const promise = new Promise((r) => (resolve = r));
      freed = { promise, resolve };
    }
    await freed.promise;
  }
  const taken = Math.min(most, CONCURRENCY - inUse);
  inUse += taken;
  return taken;
}

// ---- running one task -------------------------------------------------------------------

let stopping = false;
const stopPolls = new AbortController(); // aborts open long-polls at stop
const forceStop = new AbortController(); // aborts handlers when the grace period ends
const running = new Set();

function log(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, worker_id: WORKER_ID, ...fields })}\n`);
}

async function report(task, kind, body) {
  const path = `/workers/tasks/${task.id}/${kind}`;
  const payload = { worker_id: WORKER_ID, claim_epoch: task.claim_epoch, ...body };
  for (let delay = 500; ; delay *= 2) {
    const { status, body: answer } = await post(path, payload);
    if (status < 400) return status;
    if (status === 409 || status === 404) {
      // The task was re-offered to another worker (or is gone): our result is stale.
      log("dropped", { task_id: task.id, status, error: answer?.error });
      return status;
    }
    if (!transient(status) || delay > 16_000) {
      console.error(`report ${kind} for ${task.id} refused: ${status} ${answer?.error}`);
      return status;
    }
    await sleep(delay);
  }
}

async function execute(task, handler) {
  const lost = new AbortController();
  const finished = new AbortController(); // ends the timeout timer once the handler is done
  const timedOut = new AbortController(); // tells the handler to give up
  const signal = AbortSignal.any([lost.signal, forceStop.signal, timedOut.signal]);
  const beat = setInterval(async () => {
    const { status } = await post(`/workers/tasks/${task.id}/heartbeat`, {
      worker_id: WORKER_ID,
      claim_epoch: task.claim_epoch,
    });
    if (status === 409 || status === 404) lost.abort(new Error("claim lost"));
  }, HEARTBEAT_MS);
  try {
    let output;
    try {
      const work = handler(task, { signal });
      const limits = [work];
      if (task.timeout_ms) {
        limits.push(
          sleep(task.timeout_ms, undefined, {
            signal: AbortSignal.any([lost.signal, forceStop.signal, finished.signal]),
          }).then(() => {
            timedOut.abort();
            throw new RetryableError(`handler timed out after ${task.timeout_ms} ms`);
          }),
        );
      }
      output = (await Promise.race(limits)) ?? {};
    } catch (err) {
      if (forceStop.signal.aborted || lost.signal.aborted) {
        // Not reported: the claim lapses and the reaper re-offers the task, without
        // spending one of the step's attempts.
        log("abandoned", { task_id: task.id });
        return;
      }
      // WORKERS.md convention: uncaught errors are retryable unless marked otherwise.
      const retryable = err?.retryable !== false;
      const message = String(err?.message ?? err).slice(0, 8000) || "handler failed";
      const status = await report(task, "fail", { message, retryable });
      if (status < 400) log("failed", { task_id: task.id, retryable, message });
      return;
    }
    const status = await report(task, "complete", { output });
    if (status < 400) {
      log("completed", { task_id: task.id, instance_id: task.instance_id, attempt: task.attempt });
    } else if (status === 400 || status === 413) {
      // The server will never take this output: fail the step instead of re-running it.
      await report(task, "fail", { message: `output refused (${status})`, retryable: false });
    }
  } finally {
    finished.abort();
    clearInterval(beat);
    release();
  }
}

// ---- polling ---------------------------------------------------------------------------

async function pollLoop(name, handler, share) {
  let backoff = BACKOFF_START_MS;
  while (!stopping) {
    const reserved = await reserve(share);
    if (stopping) {
      release(reserved);
      break;
    }
    const started = Date.now();
    let answer;
    try {
      answer = await post(
        "/workers/tasks/poll",
        { handler_name: name, worker_id: WORKER_ID, limit: reserved, wait_ms: POLL_WAIT_MS },
        { signal: stopPolls.signal, timeoutMs: POLL_WAIT_MS + 30_000 },
      );
    } catch {
      release(reserved); // aborted by stop()
      break;
    }
    const tasks = Array.isArray(answer.body) ? answer.body : answer.body?.tasks;
    if (answer.status >= 400 || !Array.isArray(tasks)) {
      release(reserved);
      console.error(`poll ${name} failed (${answer.status} ${answer.body?.error}); retry in ${backoff} ms`);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      continue;
    }
    backoff = BACKOFF_START_MS;
    if (tasks.length > reserved) inUse += tasks.length - reserved;
    else release(reserved - tasks.length);
    for (const task of tasks) {
      log("claimed", { task_id: task.id, instance_id: task.instance_id, attempt: task.attempt });
      const run = execute(task, handler).finally(() => running.delete(run));
      running.add(run);
    }
    // A server without long-poll answers at once: do not spin.
    if (tasks.length === 0 && Date.now() - started < POLL_WAIT_MS / 2) await sleep(1_000);
  }
}

async function stop(signalName) {
  if (stopping) return;
  stopping = true;
  log("stopping", { signal: signalName, running: running.size });
  stopPolls.abort();
  const graceOver = sleep(GRACE_MS).then(() => "timeout");
  const outcome = await Promise.race([Promise.allSettled([...running]), graceOver]);
  if (outcome === "timeout") {
    forceStop.abort();
    await Promise.allSettled([...running]);
  }
  log("stopped");
  process.exit(0);
}

function positive(value, fallback) {
  const n = Number.parseInt(value ?? "", 10);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

const wanted = (env.ORCH8_HANDLERS ?? Object.keys(HANDLERS).join(","))
  .split(",")
  .map((s) => s.trim())
  .filter(Boolean);
for (const name of wanted) {
  if (!HANDLERS[name]) {
    console.error(`unknown handler ${name}; known: ${Object.keys(HANDLERS).join(", ")}`);
    process.exit(2);
  }
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
log("ready", { handlers: wanted, concurrency: CONCURRENCY, url: BASE });
const share = Math.max(1, Math.floor(CONCURRENCY / wanted.length));
await Promise.all(wanted.map((name) => pollLoop(name, HANDLERS[name], share)));
