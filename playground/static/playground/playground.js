// The playground's browser side: one ES module, no build step.
//
// Start asks the server for a session and a short-lived credential, then loads
// the official ElevenLabs client (only then: nothing of the SDK is fetched
// before Start) and runs the conversation with it. What only the browser sees
// (connected, speaking/listening, messages, errors, the hang-up) is reported to
// the server, which records it on the session's timeline. Status, transcript and
// timeline are server-rendered partials that htmx fetches again after a report,
// so a reload or another tab shows exactly what this one shows.

const config = JSON.parse(document.getElementById("playground-config").textContent);
const csrfToken = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";

const ui = {
  startForm: document.getElementById("start-form"),
  startButton: document.getElementById("start-button"),
  endButton: document.getElementById("end-button"),
  messageForm: document.getElementById("message-form"),
  messageText: document.getElementById("message-text"),
  sendButton: document.getElementById("send-button"),
  clientError: document.getElementById("client-error"),
};

const OPEN_STATUSES = new Set(["created", "connecting", "active"]);
const MAX_TEXT = 4000; // what the events endpoint accepts for a message

const state = {
  conversation: null, // the SDK's Conversation while a call runs
  sessionId: null,
  starting: false,
  cancelled: false, // End pressed while starting
  connected: false, // onConnect has fired
  earlyMode: null, // a mode the SDK reported before onConnect
  disconnectReported: false,
};

// Reports go out one at a time, in the order the SDK produced them, so the
// timeline reads in that order; the status partial is fetched after each one,
// so every state (connecting, connected, speaking, ...) shows on the page.
let reports = Promise.resolve();
let reportsPending = 0;

function sessionUrl(template, sessionId) {
  return template.replace(config.placeholder, sessionId);
}

async function request(method, url, body, { headers = {}, keepalive = false } = {}) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    keepalive,
    headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken, ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null; // an empty or non-JSON body; the status says enough
  }
  return { ok: response.ok, status: response.status, data };
}

function clientLog(level, message, context = {}) {
  // Best effort: a log entry that cannot be delivered must not disturb the call.
  request("POST", config.logsUrl, { level, message, sessionId: state.sessionId, context }).catch(() => {});
}

function showError(text) {
  ui.clientError.textContent = text;
  ui.clientError.hidden = !text;
}

function shownSession() {
  const status = document.getElementById("status");
  return { id: status?.dataset.sessionId || null, status: status?.dataset.sessionStatus || "" };
}

function setControls(phase) {
  const live = phase === "live";
  const idle = phase === "idle";
  for (const field of ui.startForm.querySelectorAll("input")) field.disabled = !idle;
  ui.startButton.disabled = !idle;
  // End also cancels a start in progress, and ends a session shown after a reload.
  ui.endButton.disabled = idle ? !OPEN_STATUSES.has(shownSession().status) : false;
  ui.messageText.disabled = !live;
  ui.sendButton.disabled = !live;
}

async function refreshStatus() {
  const status = document.getElementById("status");
  if (!status?.dataset.url) return;
  try {
    await htmx.ajax("GET", status.dataset.url, { source: status, target: status, swap: "outerHTML" });
  } catch {
    // htmx reports request errors itself; the next report or poll refreshes again
  }
}

function refreshPartials() {
  // Transcript, timeline, recent sessions and the log listen for this (hx-trigger="refresh from:body").
  htmx.trigger(document.body, "refresh");
}

function report(type, payload = {}) {
  const sessionId = state.sessionId;
  reportsPending += 1;
  reports = reports.then(async () => {
    try {
      const result = await request("POST", sessionUrl(config.eventsUrl, sessionId), { type, ...payload });
      if (!result.ok) {
        clientLog("warning", `the server refused a ${type} event: HTTP ${result.status}`, { response: result.data });
      }
    } catch (error) {
      clientLog("warning", `a ${type} event was not delivered: ${error}`);
    }
    await refreshStatus();
    reportsPending -= 1;
    if (reportsPending === 0) refreshPartials();
  });
  return reports;
}

async function showSession(sessionId) {
  // A reload keeps showing this session.
  history.replaceState(null, "", `${config.pageUrl}?session=${encodeURIComponent(sessionId)}`);
  const partials = { status: config.statusUrl, transcript: config.transcriptUrl, timeline: config.timelineUrl };
  // Each request from its own element: htmx lets one element have one request in flight.
  await Promise.all(
    Object.entries(partials).map(([id, template]) => {
      const element = document.getElementById(id);
      return htmx.ajax("GET", sessionUrl(template, sessionId), { source: element, target: element, swap: "outerHTML" });
    }),
  );
  refreshPartials();
}

function describeFailure({ status, data }) {
  // Every JSON error is {"error": {"code", "message", ...}}; the message names the fields at fault.
  if (data?.error?.message) return data.error.message;
  return `The server answered HTTP ${status}.`;
}

function credentialOptions(credential) {
  if (credential.signed_url) return { signedUrl: credential.signed_url, connectionType: "websocket" };
  if (credential.conversation_token) {
    return { conversationToken: credential.conversation_token, connectionType: "webrtc" };
  }
  throw new Error("the server returned no credential");
}

function reportDisconnect(payload) {
  if (state.disconnectReported) return reports;
  state.disconnectReported = true;
  return report("disconnect", payload);
}

function callbacks() {
  return {
    onConnect: ({ conversationId }) => {
      state.connected = true;
      report("connected", { conversation_id: conversationId });
      clientLog("info", "connected", { conversationId });
      if (state.earlyMode) report("mode", { mode: state.earlyMode });
    },
    onStatusChange: ({ status }) => {
      report("status", { status });
      clientLog("debug", `status ${status}`);
    },
    onModeChange: ({ mode }) => {
      // In text mode the SDK says "listening" just before onConnect; reported after
      // "connected", the page shows connected, then listening.
      if (!state.connected) {
        state.earlyMode = mode;
        return;
      }
      report("mode", { mode });
      clientLog("debug", `mode ${mode}`);
    },
    onMessage: ({ message, role }) => {
      if (!message) return;
      const speaker = role === "user" ? "user" : "agent";
      report("message", { role: speaker, message: String(message).slice(0, MAX_TEXT) });
      // The words stay on the timeline; the log only notes that a message came.
      clientLog("debug", `message from ${speaker} (${String(message).length} characters)`);
    },
    onError: (message, context) => {
      const payload = { message: String(message || "unknown error").slice(0, MAX_TEXT) };
      if (context?.code !== undefined) payload.code = String(context.code).slice(0, 64);
      report("error", payload);
      clientLog("error", `client error: ${payload.message}`, payload);
    },
    onDisconnect: (details) => {
      const payload = { reason: details.reason };
      if (Number.isInteger(details.closeCode) && details.closeCode >= 1000 && details.closeCode <= 4999) {
        payload.close_code = details.closeCode;
      }
      const message = details.message || details.closeReason;
      if (message) payload.message = String(message).slice(0, MAX_TEXT);
      reportDisconnect(payload);
      clientLog(details.reason === "error" ? "warning" : "info", `disconnected (${details.reason})`, payload);
      state.conversation = null;
      if (!state.starting) setControls("idle");
    },
  };
}

async function failStart(message) {
  // The server marks the session failed with this message; its status panel shows it.
  clientLog("error", message);
  if (state.sessionId) await reportDisconnect({ reason: "error", message: message.slice(0, MAX_TEXT) });
  else showError(message);
}

async function startConversation(body) {
  let response;
  try {
    const key = globalThis.crypto?.randomUUID?.();
    // The key makes a retried request (a double click, a flaky network) start one session, not two.
    response = await request("POST", config.startUrl, body, { headers: key ? { "Idempotency-Key": key } : {} });
  } catch (error) {
    showError(`The server could not be reached: ${error.message}`);
    return;
  }
  const session = response.data?.backend_session;
  if (!response.ok) {
    clientLog("error", `starting a ${body.agentType} session failed: HTTP ${response.status}`, {
      error: response.data?.error ?? response.data,
    });
    if (session?.session_id) {
      // The session was kept and marked failed; its status shows the upstream's own message.
      state.sessionId = session.session_id;
      await showSession(session.session_id);
    } else {
      showError(describeFailure(response));
    }
    return;
  }
  state.sessionId = session.session_id;
  await showSession(state.sessionId);

  let Conversation;
  try {
    ({ Conversation } = await import("@elevenlabs/client"));
  } catch (error) {
    await failStart(`The ElevenLabs browser client could not be loaded (was npm ci run?): ${error.message}`);
    return;
  }
  const started = response.data.elevenlabs_conversation || {};
  // Only the client that opens the conversation can give it its dynamic variables (the memory of the
  // customer's previous calls among them): the server hands them over beside the credential.
  const dynamicVariables = started.dynamic_variables || session.dynamic_variables || {};
  try {
    const conversation = await Conversation.startSession({
      ...credentialOptions(started),
      textOnly: body.textOnly,
      // The customer is the conversation's user in ElevenLabs. The locale is not sent as a language
      // override: overrides must be enabled per agent, or ElevenLabs closes the call (1008).
      userId: session.customer_id,
      ...(Object.keys(dynamicVariables).length ? { dynamicVariables } : {}),
      // Self-hosted worklets: the default blob: URLs are refused by our CSP.
      workletPaths: config.workletPaths,
      ...callbacks(),
    });
    if (state.disconnectReported) return; // it ended while starting
    state.conversation = conversation;
    if (state.cancelled) await end();
  } catch (error) {
    await failStart(`The conversation could not start: ${error?.message || error}`);
  }
}

async function start(event) {
  event.preventDefault();
  if (state.starting || state.conversation) return;
  if (!ui.startForm.reportValidity()) return;
  const form = new FormData(ui.startForm);
  showError("");
  Object.assign(state, {
    sessionId: null,
    starting: true,
    cancelled: false,
    connected: false,
    earlyMode: null,
    disconnectReported: false,
  });
  setControls("starting");
  try {
    await startConversation({
      agentType: form.get("agentType"),
      customerId: String(form.get("customerId") || "").trim(),
      locale: String(form.get("locale") || "").trim(),
      textOnly: form.get("mode") === "text",
    });
  } finally {
    state.starting = false;
    setControls(state.conversation ? "live" : "idle");
    (state.conversation ? ui.messageText : ui.startButton).focus();
  }
}

async function end() {
  if (state.starting && !state.conversation) {
    state.cancelled = true; // startConversation ends it as soon as it is connected
    ui.endButton.disabled = true;
    return;
  }
  ui.endButton.disabled = true;
  const sessionId = state.sessionId || shownSession().id;
  // Record the user's end first: hanging up makes the agent send its post-call webhook at once,
  // and whichever end reaches the server first is the one the session keeps.
  if (sessionId) {
    try {
      const result = await request("PUT", sessionUrl(config.endUrl, sessionId), { reason: "user" });
      if (!result.ok) showError(describeFailure(result));
    } catch (error) {
      showError(`The server could not be reached: ${error.message}`);
    }
  }
  if (state.conversation) {
    try {
      await state.conversation.endSession(); // onDisconnect reports reason "user"
    } catch (error) {
      clientLog("warning", `endSession failed: ${error}`);
    }
    state.conversation = null;
  }
  await reports; // the hang-up report is on the timeline before the page refreshes
  await refreshStatus();
  refreshPartials();
  setControls("idle");
  ui.startButton.focus();
}

function sendMessage(event) {
  event.preventDefault();
  const text = ui.messageText.value.trim();
  if (!text || !state.conversation) return;
  // The agent sends the words back as the user's transcript, which shows them here.
  state.conversation.sendUserMessage(text);
  ui.messageText.value = "";
  ui.messageText.focus();
}

ui.startForm.addEventListener("submit", start);
ui.endButton.addEventListener("click", end);
ui.messageForm.addEventListener("submit", sendMessage);
// A status swapped in by polling may say the shown session is now over (or open).
document.body.addEventListener("htmx:afterSwap", () => {
  if (!state.starting && !state.conversation) setControls("idle");
});
window.addEventListener("pagehide", () => {
  if (!state.conversation || !state.sessionId) return;
  // The tab is going away: hang up, and tell the server with a request that outlives the page.
  state.conversation.endSession().catch(() => {});
  request("PUT", sessionUrl(config.endUrl, state.sessionId), { reason: "user" }, { keepalive: true }).catch(() => {});
});
setControls("idle");
