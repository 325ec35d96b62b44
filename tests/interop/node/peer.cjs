#!/usr/bin/env node
// The Node.js side of minibull's interop tests: BullMQ (npm) driven over stdin/stdout.
//
// Started by tests/interop/peers.py as `node peer.cjs`, with NODE_PATH pointing at the
// node_modules that holds bullmq (.cache/node-bullmq/node_modules). Loading bullmq takes
// most of a second, so the tests start the next process ahead of time; the first command,
// {"cmd": "attach", "url": ..., "prefix": ..., "queue": ...}, gives it its queue.
// stdin:  one JSON command per line, {"id": 1, "cmd": "add", ...}.
// stdout: one JSON message per line: a reply {"id": 1, "ok": true, "result": ...} or
//         {"id": 1, "ok": false, "error": "..."}, or a notice {"notice": "run", ...} that a
//         worker started a job or a QueueEvents saw an event.
// The processor is the one all three implementations share (run_shared_processor in
// peers.py): job.data decides what a run does, so one worker serves every test.
'use strict';

const readline = require('node:readline');
const { FlowProducer, Queue, Worker, QueueEvents } = require('bullmq');

let queueName, base, queue;
const workers = new Map();
const events = new Map();

function attach({ url, prefix, queue: name }) {
  const parsed = new URL(url);
  const connection = {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    db: Number((parsed.pathname || '/0').slice(1) || 0),
    password: parsed.password || undefined,
    username: parsed.username || undefined,
  };
  queueName = name;
  base = { connection, prefix };
  queue = new Queue(queueName, base);
  return require('bullmq/package.json').version;
}

function send(message) {
  process.stdout.write(JSON.stringify(message) + '\n');
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function processor(job) {
  const data = job.data || {};
  send({ notice: 'run', jobId: job.id, attemptsMade: job.attemptsMade });
  if (data.log) {
    await job.log(data.log);
  }
  for (const value of data.progress || []) {
    await job.updateProgress(value);
  }
  if (data.hang && job.stalledCounter === 0) {
    await new Promise(() => {});
  }
  if (data.sleep_ms) {
    await sleep(data.sleep_ms);
  }
  if (data.rate_limit_ms && job.attemptsStarted === 1) {
    await queue.rateLimit(data.rate_limit_ms);
    throw Worker.RateLimitError();
  }
  if (job.attemptsMade < (data.fail_times || 0)) {
    throw new Error(`boom ${job.attemptsMade}`);
  }
  return { by: 'node', attemptsMade: job.attemptsMade };
}

function jobView(job, state) {
  if (!job) return null;
  return {
    id: job.id,
    name: job.name,
    data: job.data,
    opts: job.opts,
    returnvalue: job.returnvalue ?? null,
    attemptsMade: job.attemptsMade,
    attemptsStarted: job.attemptsStarted,
    stalledCounter: job.stalledCounter,
    failedReason: job.failedReason ?? null,
    finishedOn: job.finishedOn ?? null,
    processedOn: job.processedOn ?? null,
    timestamp: job.timestamp,
    delay: job.delay,
    priority: job.priority,
    progress: job.progress,
    stacktrace: job.stacktrace ?? [],
    deferredFailure: job.deferredFailure ?? null,
    state,
  };
}

const commands = {
  async attach(args) {
    return attach(args);
  },
  async add({ name, data, opts }) {
    return (await queue.add(name, data, opts)).id;
  },
  async addBulk({ jobs }) {
    return (await queue.addBulk(jobs)).map(job => job.id);
  },
  async addFlow({ tree }) {
    // BullMQ's FlowProducer (issue 15); the ids of the tree as {id, children}.
    const producer = new FlowProducer(base);
    const ids = node => ({ id: node.job.id, children: (node.children || []).map(ids) });
    try {
      return ids(await producer.add(tree));
    } finally {
      await producer.close();
    }
  },
  async getJob({ jobId }) {
    const job = await queue.getJob(jobId);
    return jobView(job, job ? await job.getState() : null);
  },
  async getJobCounts({ types }) {
    return queue.getJobCounts(...types);
  },
  async getJobState({ jobId }) {
    return queue.getJobState(jobId);
  },
  async pause() {
    await queue.pause();
  },
  async resume() {
    await queue.resume();
  },
  async isPaused() {
    return queue.isPaused();
  },
  async setGlobalConcurrency({ concurrency }) {
    await queue.setGlobalConcurrency(concurrency);
  },
  async setGlobalRateLimit({ max, duration }) {
    await queue.setGlobalRateLimit(max, duration);
  },
  async rateLimit({ ms }) {
    await queue.rateLimit(ms);
  },
  async upsertJobScheduler({ schedulerId, repeat, name, data, opts }) {
    const job = await queue.upsertJobScheduler(schedulerId, repeat, { name, data, opts });
    return job ? job.id : null;
  },
  async getJobScheduler({ schedulerId }) {
    return (await queue.getJobScheduler(schedulerId)) ?? null;
  },
  async removeJobScheduler({ schedulerId }) {
    await queue.removeJobScheduler(schedulerId);
  },
  async startWorker({ wid, opts }) {
    const worker = new Worker(queueName, processor, { ...base, ...opts, autorun: false });
    worker.on('error', error => send({ notice: 'error', wid, message: String(error) }));
    workers.set(wid, worker);
    worker.run().catch(error => send({ notice: 'error', wid, message: String(error) }));
    await worker.waitUntilReady();
  },
  async closeWorker({ wid, force }) {
    await workers.get(wid).close(Boolean(force));
    workers.delete(wid);
  },
  async sweepStalled({ maxStalledCount, stalledInterval }) {
    // One run of BullMQ's own stalled-jobs sweep (moveStalledJobsToWait), on an unstarted
    // worker with these settings; returns the ids moved back to wait.
    const worker = new Worker(queueName, null, {
      ...base, maxStalledCount, stalledInterval, autorun: false,
    });
    const stalled = [];
    worker.on('stalled', jobId => stalled.push(jobId));
    try {
      await worker.moveStalledJobsToWait();
    } finally {
      await worker.close();
    }
    return stalled;
  },
  async startEvents({ eid, lastEventId }) {
    const queueEvents = new QueueEvents(queueName, { ...base, lastEventId, autorun: false });
    const emit = queueEvents.emit.bind(queueEvents);
    // Forward every event by name (QueueEvents emits `name` and `name:<jobId>`; keep the first).
    queueEvents.emit = (event, ...args) => {
      if (!event.includes(':') && event !== 'error') {
        send({ notice: 'event', eid, event, args: args[0], entryId: args[1] });
      }
      return emit(event, ...args);
    };
    events.set(eid, queueEvents);
    queueEvents.run().catch(error => send({ notice: 'error', eid, message: String(error) }));
    await queueEvents.waitUntilReady();
  },
  async closeEvents({ eid }) {
    await events.get(eid).close();
    events.delete(eid);
  },
  async changeJob({ jobId, call, arg }) {
    const job = await queue.getJob(jobId);
    if (call === 'promote') await job.promote();
    else if (call === 'changeDelay') await job.changeDelay(arg);
    else if (call === 'updateData') await job.updateData(arg);
    else if (call === 'changePriority') await job.changePriority(arg);
    else throw new Error(`unknown job call ${call}`);
  },
  async promoteJobs() {
    await queue.promoteJobs();
  },
  async getMetrics({ type }) {
    return queue.getMetrics(type);
  },
  async getWorkers() {
    return (await queue.getWorkers()).map(worker => worker.rawname);
  },
  async shutdown() {
    await Promise.all([...workers.values()].map(worker => worker.close(true)));
    await Promise.all([...events.values()].map(queueEvents => queueEvents.close()));
    if (queue) await queue.close();
    return 'bye';
  },
};

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', async line => {
  const { id, cmd, ...args } = JSON.parse(line);
  try {
    const result = await commands[cmd](args);
    send({ id, ok: true, result: result ?? null });
    if (cmd === 'shutdown') process.exit(0);
  } catch (error) {
    send({ id, ok: false, error: String((error && error.stack) || error) });
  }
});
lines.on('close', () => process.exit(0));
