// A screen's panel on its device page (devices whose product says "tos:screen"): who plays on it, and its apps
// — state, launch with parameters, stop — asked of the screen itself through the hub (like DIAL).

import { del, enc, get, post } from '../api.js';
import { add, ask, busy, describeError, fmtTime, h, notice, table, toast } from '../ui.js';

const SUGGESTED_APPS = ['arena', 'netflix', 'youtube', 'spotify', 'photos'];

export function screenSection(device, role) {
  const playersBox = h('div');
  const appsAnswer = h('div', { class: 'app-answer', 'aria-live': 'polite' });
  const appInput = h('input', { type: 'text', name: 'app_id', list: 'screen-apps', value: 'arena', autocomplete: 'off', required: true });
  const paramsInput = h('textarea', { name: 'params', rows: 2, placeholder: '{"level": 2}' });
  const suggestions = h('datalist', { id: 'screen-apps' }, SUGGESTED_APPS.map((app) => h('option', { value: app })));

  async function loadPlayers() {
    try {
      const screen = await get(`sessions/screens/${enc(device.id)}`);
      const items = screen.controllers || [];
      const canRemove = role === 'owner' || role === 'operator';
      playersBox.replaceChildren(
        h('p', { class: 'sub' }, screen.online ? `Connected · ${items.length} of ${screen.max_players} players` : 'The screen is not connected'),
        table(
          [
            ['Slot', (c) => String(c.slot)],
            ['Player', (c) => `${c.user_name}${c.name ? ` (${c.name})` : ''}${c.guest ? ' · guest' : ''}`],
            ['State', (c) => (c.state === 'connected' ? 'connected' : 'link lost (slot held)')],
            ['Since', (c) => fmtTime(c.opened_at)],
            ['', (c) => (canRemove ? h('button', { class: 'danger small', onclick: () => removePlayer(c) }, 'Remove') : null)],
          ],
          items,
          'Nobody is playing on this screen.',
        ),
      );
    } catch (err) {
      playersBox.replaceChildren(notice('error', describeError(err)));
    }
  }

  async function removePlayer(player) {
    if (!(await ask(`Remove ${player.user_name} from this screen?`, 'Remove', true))) return;
    try {
      await del(`sessions/${enc(player.session_id)}`);
      toast(`${player.user_name} was removed`);
    } catch (err) {
      toast(describeError(err), 'error');
    }
    loadPlayers();
  }

  async function appCall(op, button) {
    const appId = appInput.value.trim();
    if (!appId) return appsAnswer.replaceChildren(notice('error', 'Enter the id of an app.'));
    let params = {};
    if (op === 'launch' && paramsInput.value.trim()) {
      try {
        params = JSON.parse(paramsInput.value);
      } catch {
        return appsAnswer.replaceChildren(notice('error', 'The parameters must be JSON, like {"level": 2}.'));
      }
      if (typeof params !== 'object' || Array.isArray(params) || params === null) {
        return appsAnswer.replaceChildren(notice('error', 'The parameters must be a JSON object.'));
      }
    }
    await busy(button, async () => {
      try {
        const path = `screens/${enc(device.id)}/apps/${enc(appId)}`;
        const answer = op === 'launch' ? await post(path, { params }) : op === 'stop' ? await del(path) : await get(path);
        const words = { running: 'is running', stopped: 'is stopped', not_installed: 'is not installed on this screen' };
        appsAnswer.replaceChildren(
          notice(answer.state === 'not_installed' ? 'error' : 'ok', `${answer.app_id || appId} ${words[answer.state] || answer.state}${answer.detail ? ` — ${answer.detail}` : ''}`),
        );
        appsAnswer.dataset.state = answer.state;
      } catch (err) {
        appsAnswer.replaceChildren(notice('error', describeError(err)));
        appsAnswer.dataset.state = 'error';
      }
    });
  }

  const launch = h('button', { type: 'button', onclick: (e) => appCall('launch', e.currentTarget) }, 'Launch');
  const status = h('button', { type: 'button', class: 'secondary', onclick: (e) => appCall('status', e.currentTarget) }, 'State');
  const stop = h('button', { type: 'button', class: 'secondary', onclick: (e) => appCall('stop', e.currentTarget) }, 'Stop');
  const section = h(
    'section',
    { class: 'panel stack', id: 'screen-panel' },
    h('h2', {}, 'On this screen'),
    h('h3', {}, 'Players'),
    playersBox,
    h('p', {}, h('a', { href: '../pad.html', target: '_blank', rel: 'noopener' }, 'Open the game pad on your phone'), ' and enter the code the screen shows.'),
    h('h3', {}, 'Apps'),
    h('div', { class: 'row' }, h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'App id'), appInput, suggestions)),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Parameters (JSON, for launching)'), paramsInput),
    h('div', { class: 'row' }, launch, status, stop),
    appsAnswer,
  );
  loadPlayers();
  const timer = setInterval(() => (document.body.contains(section) ? loadPlayers() : clearInterval(timer)), 3000);
  return section;
}

export function isScreen(model) {
  return Boolean(model?.['tos:screen'] || model?.thing_model?.['tos:screen']);
}

