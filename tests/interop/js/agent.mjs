// A real A2A 1.0 agent on the official JavaScript SDK (@a2a-js/sdk, pinned in package.json) for the
// interop matrix (tests/interop). Started by tests/interop/servers.py as a subprocess:
//
//     node tests/interop/js/agent.mjs --port 8767
//
// One DefaultRequestHandler, two bindings, both A2A 1.0 only (no v0.3 compat layer):
//
// * POST /jsonrpc            JSON-RPC 1.0 (SendMessage, GetTask, ...);
// * /rest                    HTTP+JSON 1.0 (POST /rest/message:send, GET /rest/tasks/{id}, ...);
// * GET /.well-known/agent-card.json   the card listing exactly these two interfaces, protocolVersion 1.0.
//
// As the card lists 1.0 interfaces only, the SDK refuses a JSON-RPC / REST call that does not send the
// header `A2A-Version: 1.0` (it would be taken as a 0.3 call).
//
// The text of the user message steers each task exactly as in tests/interop/a2a_v1_agent.py (the Python
// a2a-sdk agent of the matrix), words anywhere in the text:
//
//   delay=<seconds>   time in SUBMITTED before WORKING (default 0.05)
//   sleep=<seconds>   time WORKING (default 0.4); the status message is "working on it"
//   chunks=<n>        the artifact `result` comes in n chunks "chunk-1 " ... (default 1), the first
//                     with append: false, the rest append: true, the last lastChunk: true
//   fail              FAILED half way, reason in the status message (FAIL_REASON)
//   input_required    INPUT_REQUIRED half way, question in the status message (INPUT_PROMPT); a
//                     follow-up message to the task completes it, echoing the follow-up text
//
// The card offers push notifications: configs are kept in memory and sent by the SDK's sender.
//
// CancelTask of a running task aborts its job and the task becomes CANCELED.

import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';

import express from 'express';
import { Role, TaskState } from '@a2a-js/sdk';
import {
  AgentEvent, DefaultPushNotificationSender, DefaultRequestHandler, InMemoryPushNotificationStore, InMemoryTaskStore,
} from '@a2a-js/sdk/server';
import { agentCardHandler, jsonRpcHandler, restHandler, UserBuilder } from '@a2a-js/sdk/server/express';

const DEFAULT_DELAY = 0.05;
const DEFAULT_SLEEP = 0.4;
const FAIL_REASON = 'a2a agent failed on purpose';
const INPUT_PROMPT = 'need more input: send a follow-up message to this task';
const WORKING_TEXT = 'working on it';
const NUMBER = '([0-9]+(?:\\.[0-9]+)?)';

export const JSONRPC_PATH = '/jsonrpc';
export const REST_PATH = '/rest';

function jobOptions(text) {
  const opts = { delay: DEFAULT_DELAY, sleep: DEFAULT_SLEEP, chunks: 1, fail: false, inputRequired: false };
  let m;
  if ((m = text.match(new RegExp('\\bdelay=' + NUMBER)))) opts.delay = parseFloat(m[1]);
  if ((m = text.match(new RegExp('\\bsleep=' + NUMBER)))) opts.sleep = parseFloat(m[1]);
  if ((m = text.match(/\bchunks=([0-9]+)/))) opts.chunks = Math.max(1, parseInt(m[1], 10));
  opts.fail = /\bfail\b/.test(text);
  opts.inputRequired = /\binput_required\b/.test(text);
  return opts;
}

const textPart = (text) => ({ content: { $case: 'text', value: text }, metadata: undefined, filename: '', mediaType: '' });

const agentMessage = (text, taskId, contextId) => ({
  messageId: randomUUID(), contextId, taskId, role: Role.ROLE_AGENT, parts: [textPart(text)],
  metadata: undefined, extensions: [], referenceTaskIds: [],
});

const statusEvent = (taskId, contextId, state, text) => AgentEvent.statusUpdate({
  taskId, contextId, metadata: undefined,
  status: { state, message: text ? agentMessage(text, taskId, contextId) : undefined, timestamp: new Date().toISOString() },
});

const artifactEvent = (taskId, contextId, text, { name = '', append = false, lastChunk = false } = {}) =>
  AgentEvent.artifactUpdate({
    taskId, contextId, append, lastChunk, metadata: undefined,
    artifact: { artifactId: 'result', name, description: '', parts: [textPart(text)], metadata: undefined, extensions: [] },
  });

const userText = (message) =>
  (message?.parts ?? []).filter((p) => p.content?.$case === 'text').map((p) => p.content.value).join(' ');

class Canceled extends Error {}

/** Sleep `seconds`, or throw Canceled as soon as `signal` aborts. */
function sleep(seconds, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Canceled());
    const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, seconds * 1000);
    const onAbort = () => { clearTimeout(timer); reject(new Canceled()); };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

class SteeredExecutor {
  /** taskId -> AbortController of its running job. */
  jobs = new Map();
  /** taskId -> contextId, of every task this agent started. */
  contexts = new Map();

  async execute(requestContext, eventBus) {
    const { taskId, contextId } = requestContext;
    const text = userText(requestContext.userMessage);
    if (requestContext.task) { // the follow-up to an INPUT_REQUIRED task (the SDK wants a task event first)
      eventBus.publish(AgentEvent.task(requestContext.task));
      eventBus.publish(statusEvent(taskId, contextId, TaskState.TASK_STATE_WORKING, WORKING_TEXT));
      eventBus.publish(artifactEvent(taskId, contextId, `answer: ${text}`, { name: 'result', lastChunk: true }));
      eventBus.publish(statusEvent(taskId, contextId, TaskState.TASK_STATE_COMPLETED));
      return;
    }
    // A new task: make it exist first, so a non-blocking send (returnImmediately) answers at once.
    eventBus.publish(AgentEvent.task({
      id: taskId, contextId, artifacts: [], history: [requestContext.userMessage], metadata: undefined,
      status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: new Date().toISOString() },
    }));
    const job = new AbortController();
    this.jobs.set(taskId, job);
    this.contexts.set(taskId, contextId);
    const opts = jobOptions(text);
    try {
      await sleep(opts.delay, job.signal);
      eventBus.publish(statusEvent(taskId, contextId, TaskState.TASK_STATE_WORKING, WORKING_TEXT));
      await sleep(opts.sleep / 2, job.signal);
      if (opts.inputRequired) {
        eventBus.publish(statusEvent(taskId, contextId, TaskState.TASK_STATE_INPUT_REQUIRED, INPUT_PROMPT));
        return;
      }
      if (opts.fail) {
        eventBus.publish(statusEvent(taskId, contextId, TaskState.TASK_STATE_FAILED, FAIL_REASON));
        return;
      }
      for (let i = 1; i <= opts.chunks; i++) {
        eventBus.publish(artifactEvent(taskId, contextId, `chunk-${i} `, {
          name: i === 1 ? 'result' : '', append: i > 1, lastChunk: i === opts.chunks,
        }));
        await sleep(opts.sleep / 2 / opts.chunks, job.signal);
      }
      eventBus.publish(statusEvent(taskId, contextId, TaskState.TASK_STATE_COMPLETED));
    } catch (err) {
      if (!(err instanceof Canceled)) throw err; // canceled: cancelTask published CANCELED already
    } finally {
      this.jobs.delete(taskId);
    }
  }

  async cancelTask(taskId, eventBus) {
    this.jobs.get(taskId)?.abort();
    eventBus.publish(statusEvent(taskId, this.contexts.get(taskId) ?? '', TaskState.TASK_STATE_CANCELED));
  }
}

export function buildCard(baseUrl) {
  return {
    name: '@a2a-js/sdk interop agent',
    description: 'Steered by its input text (sleep=, delay=, chunks=, fail, input_required).',
    version: '0.1.0',
    supportedInterfaces: [
      { url: `${baseUrl}${JSONRPC_PATH}`, protocolBinding: 'JSONRPC', protocolVersion: '1.0', tenant: '' },
      { url: `${baseUrl}${REST_PATH}`, protocolBinding: 'HTTP+JSON', protocolVersion: '1.0', tenant: '' },
    ],
    provider: undefined,
    capabilities: { streaming: true, pushNotifications: true, extensions: [] },
    securitySchemes: {},
    securityRequirements: [],
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: [{
      id: 'echo', name: 'echo', description: 'steered echo', tags: ['test'], examples: [], inputModes: [],
      outputModes: [], securityRequirements: [],
    }],
    signatures: [],
  };
}

export function createApp(port) {
  const card = buildCard(`http://127.0.0.1:${port}`);
  // Push notifications: configs in memory, POSTed with the SDK's sender (token in X-A2A-Notification-Token).
  const pushStore = new InMemoryPushNotificationStore();
  const handler = new DefaultRequestHandler(card, new InMemoryTaskStore(), new SteeredExecutor(), undefined, pushStore,
    new DefaultPushNotificationSender(pushStore));
  const app = express();
  app.use('/.well-known/agent-card.json', agentCardHandler({ agentCardProvider: handler, cache: { maxAge: 0 } }));
  app.use(JSONRPC_PATH, jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication }));
  app.use(REST_PATH, restHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication }));
  return app;
}

function main() {
  const { values } = parseArgs({ options: { port: { type: 'string' } } });
  const port = Number.parseInt(values.port ?? '', 10);
  if (!Number.isInteger(port) || port <= 0) {
    console.error('usage: node agent.mjs --port <port>');
    process.exit(2);
  }
  const server = createApp(port).listen(port, '127.0.0.1', () => {
    console.log(`@a2a-js/sdk interop agent on http://127.0.0.1:${port}`);
  });
  server.on('error', (err) => { console.error(err); process.exit(1); });
  const stop = () => { // open SSE streams must not hold up the shutdown
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
