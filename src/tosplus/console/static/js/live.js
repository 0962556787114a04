// One WebSocket to /api/v1/live for the whole console. Pages subscribe while they are shown; the socket
// opens with the first subscriber and closes after the last one leaves. The hub sends a person only the
// events of devices they may see, so no device filter is needed in the URL (a home may have hundreds).

import { refresh, token } from './api.js';

const TYPES = 'telemetry,twin,presence,command,dead_letter,device';
const listeners = new Set(); // {deviceId|null, fn}
let socket = null;
let retryMs = 1000;
let retryTimer = null;
let everConnected = false;
let idleTimer = null;

/** 'connecting' | 'live' | 'offline' | 'idle' (no page listens); shown in the header. */
export const status = new EventTarget();
status.state = 'idle';

function setState(state) {
  status.state = state;
  status.dispatchEvent(new Event('change'));
}

function deliver(event) {
  for (const { deviceId, fn } of listeners) {
    if (deviceId === null || deviceId === event.device_id) {
      try {
        fn(event);
      } catch (err) {
        console.error('live listener failed', err);
      }
    }
  }
}

function connect() {
  clearTimeout(retryTimer);
  if (socket || !listeners.size || !token()) return;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const url = `${scheme}://${location.host}/api/v1/live?type=${TYPES}&token=${encodeURIComponent(token())}`;
  setState('connecting');
  const ws = new WebSocket(url);
  socket = ws;
  ws.onopen = () => {
    retryMs = 1000;
    setState('live');
    // Events were missed while disconnected: let pages reload what they show.
    if (everConnected) deliver({ type: 'reconnected', device_id: null });
    everConnected = true;
  };
  ws.onmessage = (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    if (event.type === 'hello') return;
    if (event.type === 'lagged') event.device_id = null; // every page should reload: events were dropped
    deliver(event);
  };
  ws.onclose = async (closed) => {
    if (socket !== ws) return;
    socket = null;
    setState(listeners.size ? 'offline' : 'idle');
    if (!listeners.size) return;
    // 4401: the token was refused (expired): renew it before trying again.
    if (closed.code === 4401 && !(await refresh())) return;
    retryTimer = setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 15000);
  };
}

/** Call `fn(event)` for events of `deviceId` (null: every event). Returns the unsubscribe. */
export function subscribe(deviceId, fn) {
  const entry = { deviceId, fn };
  listeners.add(entry);
  clearTimeout(idleTimer);
  connect();
  return () => {
    listeners.delete(entry);
    // Pages unsubscribe and the next page subscribes right after: keep the socket for that moment.
    if (!listeners.size) idleTimer = setTimeout(() => listeners.size || close(), 5000);
  };
}

/** Close the socket (signing out, or nothing left to listen to). */
export function close() {
  clearTimeout(retryTimer);
  const ws = socket;
  socket = null;
  everConnected = false;
  if (ws) ws.close(1000);
  setState(listeners.size ? 'offline' : 'idle');
}
