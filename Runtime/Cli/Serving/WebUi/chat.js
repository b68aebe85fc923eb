// The chat page: one conversation kept in this page, each reply streamed from /v1/chat/completions (server-sent
// events). Model output is only ever set as text (text nodes, textContent), never parsed as HTML; the server's
// Content-Security-Policy also requires Trusted Types, so an HTML sink would throw rather than render.

const $ = (id) => document.getElementById(id);
const messages = $('messages');
const prompt = $('prompt');
const sendButton = $('send');
const stopButton = $('stop');

/** The conversation as the API takes it: {role, content}, the user's and the model's turns. */
let history = [];
let modelId = null;
let running = null;   // the AbortController of the reply being streamed

async function loadModel() {
  try {
    const response = await fetch('/v1/models');
    const body = await response.json();
    modelId = body.data[0].id;
    $('model').textContent = modelId;
  } catch (error) {
    $('model').textContent = `cannot list the models: ${error.message}`;
  }
}

/** Reads the sampling controls; null (and a message) when one is out of range. */
function readSettings() {
  const error = $('settings-error');
  error.textContent = '';
  const number = (id, min, max, integer) => {
    const input = $(id);
    if (input.value.trim() === '') return undefined;
    const value = Number(input.value);
    if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
      throw new RangeError(`${input.labels[0].textContent} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}.`);
    }
    return value;
  };
  try {
    const settings = {
      temperature: number('temperature', 0, 2, false),
      top_p: number('top-p', 0.01, 1, false),
      max_tokens: number('max-tokens', 1, 1e9, true),
      seed: number('seed', -(2 ** 53) + 1, 2 ** 53 - 1, true),
    };
    for (const key of Object.keys(settings)) {
      if (settings[key] === undefined) delete settings[key];
    }
    return settings;
  } catch (e) {
    error.textContent = e.message;
    return null;
  }
}

/** A message in the page: who, the text, and a line of figures under it. */
function addMessage(role, text) {
  $('empty')?.remove();
  const article = document.createElement('article');
  article.className = `message ${role}`;
  const who = document.createElement('div');
  who.className = 'role';
  who.textContent = role === 'user' ? 'You' : (modelId ?? 'Model');
  const body = document.createElement('div');
  body.className = 'text';
  body.textContent = text;
  const meta = document.createElement('div');
  meta.className = 'meta';
  article.append(who, body, meta);
  messages.append(article);
  messages.scrollTop = messages.scrollHeight;
  return { article, body, meta };
}

function setBusy(busy) {
  sendButton.disabled = busy;
  stopButton.disabled = !busy;
}

/** The error message of a refused request: OpenAI's {"error":{"message"}} when the body has one. */
async function errorOf(response) {
  const text = await response.text();
  try {
    return JSON.parse(text).error.message;
  } catch {
    return `${response.status} ${response.statusText}: ${text}`;
  }
}

/** Reads server-sent events from a response body; calls onData with each event's data. */
async function readEvents(body, onData) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split('\n')) {
        if (line.startsWith('data: ')) onData(line.slice(6));
      }
    }
  }
}

function describe(reply, state, figures) {
  const { tokens, ttftMs, tokensPerSecond, finish } = figures;
  reply.article.dataset.state = state;
  reply.article.dataset.tokens = String(tokens);
  if (ttftMs !== null) reply.article.dataset.ttftMs = ttftMs.toFixed(1);
  if (tokensPerSecond !== null) reply.article.dataset.tokensPerSecond = tokensPerSecond.toFixed(1);
  const parts = [`${tokens} token${tokens === 1 ? '' : 's'}`];
  if (ttftMs !== null) parts.push(`first after ${ttftMs.toFixed(0)} ms`);
  if (tokensPerSecond !== null) parts.push(`then ${tokensPerSecond.toFixed(1)} tokens/s`);
  if (state === 'stopped') parts.push('stopped');
  else if (finish) parts.push(finish === 'length' ? 'max tokens reached' : 'finished');
  reply.meta.textContent = parts.join(' · ');
}

async function send() {
  if (running) return;
  const text = prompt.value;
  if (text.trim() === '') return;
  const settings = readSettings();
  if (!settings) return;
  prompt.value = '';
  const conversation = history;   // New chat replaces it; this reply belongs to this one
  const user = addMessage('user', text);
  conversation.push({ role: 'user', content: text });
  const reply = addMessage('assistant', '');
  reply.article.dataset.state = 'streaming';
  // The reply's text is one text node, extended once per frame: a fast model sends hundreds of pieces a second,
  // and laying the page out for each would leave no time for the stop button.
  const shown = document.createTextNode('');
  reply.body.append(shown);
  let pending = '';
  let frame = 0;
  const flush = () => {
    cancelAnimationFrame(frame);
    frame = 0;
    if (pending === '') return;
    shown.appendData(pending);   // text, whatever it contains
    pending = '';
    messages.scrollTop = messages.scrollHeight;
  };
  const controller = new AbortController();
  running = controller;
  setBusy(true);

  const started = performance.now();
  let first = null;
  let last = null;
  let pieces = 0;
  let content = '';
  let usage = null;
  let finish = null;
  const figures = () => {
    const tokens = usage?.completion_tokens ?? pieces;
    // Tokens after the first over the time they took; when they all arrived in one burst (the browser's clock is
    // coarse, and a fast model's events can come in one network read), over the whole reply from the request instead.
    const rate = tokens > 1 && last - first >= 1 ? (tokens - 1) / ((last - first) / 1000)
      : tokens > 0 && last > started ? tokens / ((last - started) / 1000) : null;
    return { tokens, ttftMs: first === null ? null : first - started, tokensPerSecond: rate, finish };
  };
  try {
    const response = await fetch('/v1/chat/completions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: modelId, messages: conversation, stream: true, stream_options: { include_usage: true }, ...settings }),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorOf(response));
    await readEvents(response.body, (data) => {
      if (data === '[DONE]') return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices?.[0];
      const piece = choice?.delta?.content;
      if (piece) {
        last = performance.now();
        first ??= last;
        pieces++;
        content += piece;
        pending += piece;
        frame ||= requestAnimationFrame(flush);
      }
      if (choice?.finish_reason) finish = choice.finish_reason;
    });
    conversation.push({ role: 'assistant', content });
    describe(reply, 'done', figures());
  } catch (error) {
    if (error.name === 'AbortError') {
      // Stopped: the server sees the connection close and stops generating; the partial reply stays in the conversation.
      conversation.push({ role: 'assistant', content });
      describe(reply, 'stopped', figures());
    } else {
      // Refused or failed: this turn is not part of the conversation sent next.
      conversation.pop();
      user.article.classList.add('unsent');
      reply.article.dataset.state = 'error';
      reply.article.classList.add('failed');
      reply.meta.textContent = error.message;
    }
  } finally {
    flush();
    controller.abort();   // a failed stream's connection is closed too
    running = null;
    setBusy(false);
    prompt.focus();
  }
}

sendButton.addEventListener('click', send);
stopButton.addEventListener('click', () => running?.abort());
prompt.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});
$('new-chat').addEventListener('click', () => {
  running?.abort();
  history = [];
  messages.replaceChildren();
  prompt.focus();
});

loadModel();
prompt.focus();
