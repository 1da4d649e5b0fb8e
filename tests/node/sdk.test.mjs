// Threadline driven by the official openai npm package. tests/acceptance/test_node_sdk.py starts the
// server and a scripted model, then runs this file once per pinned SDK major (OPENAI_PACKAGE).
// The scripted model answers by the conversation (see that file): "weather" asks for get_weather,
// "zebra" calls file_search and then cites the first result, "compute" runs print(6 * 7) with
// code_interpreter, "fail" gets a provider error.
import assert from 'node:assert/strict';
import { test } from 'node:test';

const sdk = await import(process.env.OPENAI_PACKAGE);
const OpenAI = sdk.default;
const toFile = sdk.toFile ?? OpenAI.toFile;
const major = Number(process.env.OPENAI_MAJOR);
const client = new OpenAI({ baseURL: process.env.THREADLINE_BASE_URL, apiKey: 'test-key', maxRetries: 0 });
const runs = client.beta.threads.runs;

// Path parameters moved into the params object after v4.
const submitStream = (threadId, runId, body) =>
  major === 4
    ? runs.submitToolOutputsStream(threadId, runId, body)
    : runs.submitToolOutputsStream(runId, { thread_id: threadId, ...body });
const submitAndPoll = (threadId, runId, body) =>
  major === 4
    ? runs.submitToolOutputsAndPoll(threadId, runId, body)
    : runs.submitToolOutputsAndPoll(runId, { thread_id: threadId, ...body });

const WEATHER = {
  type: 'function',
  function: { name: 'get_weather', parameters: { type: 'object', properties: {} } },
};

async function assistant(extra = {}) {
  return client.beta.assistants.create({ model: 'fake-model', tools: [WEATHER], ...extra });
}

async function searchAssistant() {
  const file = await client.files.create({
    file: await toFile(Buffer.from('The obsidian zebra negotiates tariffs with lighthouse keepers.'), 'zebra.txt'),
    purpose: 'assistants',
  });
  assert.equal(file.filename, 'zebra.txt');
  const store = await client.vectorStores.create({ name: 'zebras' });
  const batch = await client.vectorStores.fileBatches.uploadAndPoll(store.id, {
    files: [await toFile(Buffer.from('Refunds are granted within thirty days.'), 'refunds.txt')],
    fileIds: [file.id],
  });
  assert.equal(batch.status, 'completed');
  assert.equal(batch.file_counts.completed, 2);
  const searcher = await client.beta.assistants.create({
    model: 'fake-model',
    tools: [{ type: 'file_search' }],
    tool_resources: { file_search: { vector_store_ids: [store.id] } },
  });
  return { searcher, fileId: file.id };
}

test('stream helpers: textDelta, messageDone, finalRun, finalMessages', async () => {
  const a = await assistant();
  const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hello' }] });
  let text = '';
  const done = [];
  const stream = runs
    .stream(thread.id, { assistant_id: a.id })
    .on('textDelta', (delta) => (text += delta.value))
    .on('messageDone', (message) => done.push(message));
  const run = await stream.finalRun();
  assert.equal(run.status, 'completed');
  assert.equal(text, 'Hello from Threadline');
  assert.equal(done.length, 1);
  const [message] = await stream.finalMessages();
  assert.equal(message.content[0].text.value, 'Hello from Threadline');
  assert.deepEqual(message.content[0].text.annotations, []);
});

test('createAndRunStream, toolCallCreated/toolCallDelta, submitToolOutputsStream', async () => {
  const a = await assistant();
  const created = [];
  let args = '';
  const stream = client.beta.threads
    .createAndRunStream({ assistant_id: a.id, thread: { messages: [{ role: 'user', content: 'weather?' }] } })
    .on('toolCallCreated', (call) => created.push(call))
    .on('toolCallDelta', (delta) => (args += delta.function?.arguments ?? ''));
  const run = await stream.finalRun();
  assert.equal(run.status, 'requires_action');
  assert.equal(created.length, 1);
  assert.equal(created[0].function.name, 'get_weather');
  assert.equal(args, '{"city": "Oslo"}');
  const call = run.required_action.submit_tool_outputs.tool_calls[0];
  let text = '';
  const submitted = submitStream(run.thread_id, run.id, {
    tool_outputs: [{ tool_call_id: call.id, output: '-5C' }],
  }).on('textDelta', (delta) => (text += delta.value));
  const final = await submitted.finalRun();
  assert.equal(final.status, 'completed');
  assert.equal(text, 'It is -5C');
});

test('code_interpreter: toolCallCreated, toolCallDelta with input and outputs', async () => {
  const a = await client.beta.assistants.create({ model: 'fake-model', tools: [{ type: 'code_interpreter' }] });
  const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'compute' }] });
  const created = [];
  let input = '';
  const outputs = [];
  const stream = runs
    .stream(thread.id, { assistant_id: a.id })
    .on('toolCallCreated', (call) => created.push(call.type))
    .on('toolCallDelta', (delta) => {
      input += delta.code_interpreter?.input ?? '';
      outputs.push(...(delta.code_interpreter?.outputs ?? []));
    });
  const run = await stream.finalRun();
  assert.equal(run.status, 'completed');
  assert.deepEqual(created, ['code_interpreter']);
  assert.equal(input, 'print(6 * 7)');
  assert.deepEqual(
    outputs.map((o) => [o.index, o.type, o.logs]),
    [[0, 'logs', '42\n']],
  );
  const [message] = await stream.finalMessages();
  assert.equal(message.content[0].text.value, 'It is 42\n');
});

test('for await over runs.create({stream: true})', async () => {
  const a = await assistant();
  const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hello' }] });
  const names = [];
  for await (const event of await runs.create(thread.id, { assistant_id: a.id, stream: true })) {
    names.push(event.event);
  }
  assert.equal(names[0], 'thread.run.created');
  assert.equal(names.at(-1), 'thread.run.completed');
});

test('poll helpers: createAndPoll, submitToolOutputsAndPoll', async () => {
  const a = await assistant();
  const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'weather?' }] });
  const run = await runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 50 });
  assert.equal(run.status, 'requires_action');
  const call = run.required_action.submit_tool_outputs.tool_calls[0];
  const final = await submitAndPoll(thread.id, run.id, { tool_outputs: [{ tool_call_id: call.id, output: 'rain' }] });
  assert.equal(final.status, 'completed');
  const messages = await client.beta.threads.messages.list(thread.id);
  assert.equal(messages.data[0].content[0].text.value, 'It is rain');
});

test('auto-pagination', async () => {
  const thread = await client.beta.threads.create({
    messages: Array.from({ length: 5 }, (_, i) => ({ role: 'user', content: `m${i}` })),
  });
  const seen = [];
  for await (const message of client.beta.threads.messages.list(thread.id, { limit: 2, order: 'asc' })) {
    seen.push(message.content[0].text.value);
  }
  assert.deepEqual(seen, ['m0', 'm1', 'm2', 'm3', 'm4']);
});

test('file_search run: annotations in the streamed messages', async () => {
  const { searcher, fileId } = await searchAssistant();
  const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'zebra tariffs?' }] });
  const stream = runs.stream(thread.id, { assistant_id: searcher.id });
  const run = await stream.finalRun();
  assert.equal(run.status, 'completed');
  // Built from the deltas (v4): the citation must have arrived in one of them, exactly once.
  const [message] = await stream.finalMessages();
  const text = message.content[0].text;
  assert.equal(text.annotations.length, 1);
  const [annotation] = text.annotations;
  assert.equal(annotation.type, 'file_citation');
  assert.equal(annotation.file_citation.file_id, fileId);
  assert.equal(text.value.slice(annotation.start_index, annotation.end_index), annotation.text);
  assert.match(annotation.text, /^【\d+†zebra\.txt】$/);
});

test('a failed streamed run resolves finalRun() with last_error', async () => {
  const a = await assistant();
  const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'please fail' }] });
  const stream = runs.stream(thread.id, { assistant_id: a.id });
  const run = await stream.finalRun();
  assert.equal(run.status, 'failed');
  assert.equal(run.last_error.code, 'server_error');
  assert.match(run.last_error.message, /scripted failure/);
  const names = [];
  const again = await client.beta.threads.create({ messages: [{ role: 'user', content: 'please fail' }] });
  for await (const event of await runs.create(again.id, { assistant_id: a.id, stream: true })) {
    names.push(event.event);
  }
  assert.equal(names.at(-1), 'thread.run.failed');
});
