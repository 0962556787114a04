// The TV page's game: an arena for 2 to 8 players, each a coloured ship steered by its phone's pad.
//
// Input frames (docs/sessions.md, "The TV and phone pages") carry a 32-bit button mask and up to 8 axes;
// the bits follow the W3C standard gamepad's button numbers, so a real gamepad maps onto them directly.
// The stick (axes 0 and 1) wins over the D-pad when it is pushed past the dead zone. A shoots in the
// direction the ship faces; B dashes. A hit scores a point for the shooter; a paused player (its phone
// dropped) is greyed, does not move and cannot be hit, and carries on where it was when it comes back.

export const BUTTONS = { a: 1 << 0, b: 1 << 1, up: 1 << 12, down: 1 << 13, left: 1 << 14, right: 1 << 15 };
export const COLOURS = ['#ef4444', '#3b82f6', '#22c55e', '#eab308', '#a855f7', '#f97316', '#06b6d4', '#ec4899'];
export const WIDTH = 960;
export const HEIGHT = 540;

const SPEED = 240; // px/s
const DASH_SPEED = 720;
const DASH_S = 0.18;
const DASH_COOLDOWN_S = 1.0;
const SHOT_SPEED = 620;
const SHOT_COOLDOWN_S = 0.3;
const RADIUS = 18;
const DEAD_ZONE = 0.15;
const SMOOTH = 0.2; // weight of a new latency sample in the running average

function spawn(slot) {
  // Around an ellipse, slot 1 on the left, so players start apart and facing the middle.
  const angle = Math.PI + ((slot - 1) * 2 * Math.PI) / 8;
  return { x: WIDTH / 2 + Math.cos(angle) * WIDTH * 0.36, y: HEIGHT / 2 + Math.sin(angle) * HEIGHT * 0.34 };
}

/** Why an input frame that came over a direct channel is not valid, or null (the hub's rules, relay.py). */
export function frameProblem(frame) {
  if (!frame || typeof frame !== 'object' || Array.isArray(frame)) return 'not an object';
  if (!Number.isInteger(frame.seq) || frame.seq < 0) return 'seq';
  if (typeof frame.t_sent !== 'number' || !Number.isFinite(frame.t_sent)) return 't_sent';
  if (!Number.isInteger(frame.buttons) || frame.buttons < 0 || frame.buttons > 0xffffffff) return 'buttons';
  const axes = frame.axes ?? [];
  if (!Array.isArray(axes) || axes.length > 8) return 'axes';
  if (!axes.every((v) => typeof v === 'number' && v >= -1 && v <= 1)) return 'axis';
  return null;
}

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const average = (old, sample) => (old === null ? sample : old + SMOOTH * (sample - old));

export class Arena {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas ? canvas.getContext('2d') : null;
    this.players = new Map(); // session id -> player
    this.shots = [];
    this.running = true;
    this.onHit = null; // (shooter, target) => ..., to tell both phones
  }

  join({ session_id: id, slot, user_name: userName, name, state }) {
    let player = this.players.get(id);
    if (!player) {
      const at = spawn(slot);
      player = {
        id,
        slot,
        colour: COLOURS[(slot - 1) % COLOURS.length],
        x: at.x,
        y: at.y,
        facing: { x: at.x < WIDTH / 2 ? 1 : -1, y: 0 },
        score: 0,
        shots: 0,
        hits: 0,
        buttons: 0,
        axes: [],
        seq: -1,
        frames: 0,
        dashUntil: 0,
        dashReady: 0,
        shotReady: 0,
        flashUntil: 0,
        oneWayMs: null, // phone -> hub -> TV, from t_sent (the phone's clock: an estimate)
        hubToScreenMs: null, // hub -> TV, from t_hub
        directMs: null, // phone -> TV over the direct channel, from t_sent (an estimate too)
        path: null, // 'direct' or 'hub': the path of the last frame applied
        direct: false, // a direct channel with this phone is open
        pathFrames: { hub: 0, direct: 0 },
        rttMs: null, // what the phone measured, when it tells
        rttHubMs: null,
        rttDirectMs: null,
      };
      this.players.set(id, player);
    }
    player.slot = slot;
    player.name = name || 'phone';
    player.userName = userName || '';
    player.paused = state !== 'connected';
    return player;
  }

  leave(id) {
    this.players.delete(id);
    this.shots = this.shots.filter((s) => s.owner !== id);
  }

  pause(id, paused) {
    const player = this.players.get(id);
    if (!player) return;
    player.paused = paused;
    if (!paused) player.seq = -1; // a phone that connects again may count its frames afresh
    if (paused) {
      player.buttons = 0; // a dropped phone's last frame must not keep the ship moving
      player.axes = [];
    }
  }

  /** One input frame, relayed by the hub or over the direct channel (``path``); the player, or null when the
   * frame is stale or for no player. Newest wins across both paths: one seq for the phone's frames. */
  input(frame, now = Date.now(), path = 'hub') {
    const player = this.players.get(frame.session_id);
    if (!player || typeof frame.seq !== 'number') return null;
    if (frame.seq <= player.seq) return null; // late, a duplicate, or overtaken on the other path
    player.seq = frame.seq;
    player.frames += 1;
    player.pathFrames[path] += 1;
    player.path = path;
    player.buttons = frame.buttons >>> 0;
    player.axes = Array.isArray(frame.axes) ? frame.axes.slice(0, 8) : [];
    if (path === 'direct') {
      if (typeof frame.t_sent === 'number') player.directMs = average(player.directMs, now - frame.t_sent);
      return player;
    }
    if (typeof frame.t_hub === 'number') player.hubToScreenMs = average(player.hubToScreenMs, now - frame.t_hub);
    if (typeof frame.t_sent === 'number') player.oneWayMs = average(player.oneWayMs, now - frame.t_sent);
    return player;
  }

  /** A direct channel with this player's phone opened or closed. */
  setDirect(id, open) {
    const player = this.players.get(id);
    if (!player) return;
    player.direct = open;
    if (!open && player.path === 'direct') player.path = 'hub'; // its next frame comes through the hub
  }

  /** The round trip the phone measured and reported ({rtt_ms, rtt_hub_ms, rtt_direct_ms}). */
  report(id, data) {
    const player = this.players.get(id);
    if (!player) return;
    const ms = (v) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v < 600000 ? v : null);
    player.rttMs = ms(data.rtt_ms);
    player.rttHubMs = ms(data.rtt_hub_ms);
    player.rttDirectMs = ms(data.rtt_direct_ms);
  }

  step(dt, now = performance.now() / 1000) {
    if (!this.running) return;
    for (const p of this.players.values()) {
      if (p.paused) continue;
      let dx = Number(p.axes[0]) || 0;
      let dy = Number(p.axes[1]) || 0;
      if (Math.hypot(dx, dy) < DEAD_ZONE) {
        dx = (p.buttons & BUTTONS.right ? 1 : 0) - (p.buttons & BUTTONS.left ? 1 : 0);
        dy = (p.buttons & BUTTONS.down ? 1 : 0) - (p.buttons & BUTTONS.up ? 1 : 0);
      }
      const length = Math.hypot(dx, dy);
      if (length > 1) {
        dx /= length;
        dy /= length;
      }
      if (length > 0) p.facing = { x: dx / Math.max(length, 1e-9), y: dy / Math.max(length, 1e-9) };
      if (p.buttons & BUTTONS.b && now >= p.dashReady) {
        p.dashUntil = now + DASH_S;
        p.dashReady = now + DASH_COOLDOWN_S;
      }
      const speed = now < p.dashUntil ? DASH_SPEED : SPEED;
      const [mx, my] = now < p.dashUntil && length === 0 ? [p.facing.x, p.facing.y] : [dx, dy];
      p.x = clamp(p.x + mx * speed * dt, RADIUS, WIDTH - RADIUS);
      p.y = clamp(p.y + my * speed * dt, RADIUS, HEIGHT - RADIUS);
      if (p.buttons & BUTTONS.a && now >= p.shotReady) {
        p.shotReady = now + SHOT_COOLDOWN_S;
        p.shots += 1;
        this.shots.push({
          owner: p.id,
          colour: p.colour,
          x: p.x + p.facing.x * (RADIUS + 4),
          y: p.y + p.facing.y * (RADIUS + 4),
          vx: p.facing.x * SHOT_SPEED,
          vy: p.facing.y * SHOT_SPEED,
        });
      }
    }
    const flying = [];
    for (const s of this.shots) {
      s.x += s.vx * dt;
      s.y += s.vy * dt;
      if (s.x < 0 || s.x > WIDTH || s.y < 0 || s.y > HEIGHT) continue;
      const target = [...this.players.values()].find(
        (p) => p.id !== s.owner && !p.paused && Math.hypot(p.x - s.x, p.y - s.y) < RADIUS,
      );
      if (!target) {
        flying.push(s);
        continue;
      }
      const shooter = this.players.get(s.owner);
      if (shooter) shooter.score += 1;
      target.hits += 1;
      target.flashUntil = now + 0.4;
      const at = spawn(target.slot);
      target.x = at.x;
      target.y = at.y;
      if (shooter && this.onHit) this.onHit(shooter, target);
    }
    this.shots = flying;
  }

  draw(now = performance.now() / 1000) {
    const ctx = this.ctx;
    if (!ctx) return;
    ctx.fillStyle = '#0b1020';
    ctx.fillRect(0, 0, WIDTH, HEIGHT);
    ctx.strokeStyle = '#1e293b';
    ctx.lineWidth = 1;
    for (let x = 0; x <= WIDTH; x += 60) {
      ctx.beginPath();
      ctx.moveTo(x, 0);
      ctx.lineTo(x, HEIGHT);
      ctx.stroke();
    }
    for (let y = 0; y <= HEIGHT; y += 60) {
      ctx.beginPath();
      ctx.moveTo(0, y);
      ctx.lineTo(WIDTH, y);
      ctx.stroke();
    }
    for (const s of this.shots) {
      ctx.fillStyle = s.colour;
      ctx.beginPath();
      ctx.arc(s.x, s.y, 4, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.textAlign = 'center';
    ctx.font = '14px system-ui, sans-serif';
    for (const p of this.players.values()) {
      ctx.globalAlpha = p.paused ? 0.35 : 1;
      ctx.fillStyle = p.paused ? '#6b7280' : now < p.flashUntil ? '#ffffff' : p.colour;
      ctx.beginPath();
      // A ship: a triangle pointing where it faces.
      const angle = Math.atan2(p.facing.y, p.facing.x);
      for (const [r, a] of [
        [RADIUS + 4, 0],
        [RADIUS, 2.5],
        [RADIUS, -2.5],
      ]) {
        ctx.lineTo(p.x + r * Math.cos(angle + a), p.y + r * Math.sin(angle + a));
      }
      ctx.closePath();
      ctx.fill();
      ctx.globalAlpha = 1;
      ctx.fillStyle = '#e5e7eb';
      const labelY = p.y - RADIUS - 8 < 14 ? p.y + RADIUS + 18 : p.y - RADIUS - 8; // below when at the top
      ctx.fillText(`${p.slot} · ${p.name}${p.paused ? ' (paused)' : ''}`, p.x, labelY);
    }
    if (!this.running) {
      ctx.fillStyle = 'rgba(0,0,0,0.6)';
      ctx.fillRect(0, 0, WIDTH, HEIGHT);
      ctx.fillStyle = '#fff';
      ctx.font = '32px system-ui, sans-serif';
      ctx.fillText('Stopped', WIDTH / 2, HEIGHT / 2);
    }
  }

  state() {
    return {
      running: this.running,
      shots_flying: this.shots.length,
      players: [...this.players.values()]
        .sort((a, b) => a.slot - b.slot)
        .map((p) => ({
          session_id: p.id,
          slot: p.slot,
          name: p.name,
          user_name: p.userName,
          colour: p.colour,
          x: Math.round(p.x * 10) / 10,
          y: Math.round(p.y * 10) / 10,
          score: p.score,
          shots: p.shots,
          hits: p.hits,
          paused: p.paused,
          buttons: p.buttons,
          seq: p.seq,
          frames: p.frames,
          one_way_ms: p.oneWayMs === null ? null : Math.round(p.oneWayMs * 10) / 10,
          hub_to_screen_ms: p.hubToScreenMs === null ? null : Math.round(p.hubToScreenMs * 10) / 10,
          direct_ms: p.directMs === null ? null : Math.round(p.directMs * 10) / 10,
          path: p.path,
          direct: p.direct,
          hub_frames: p.pathFrames.hub,
          direct_frames: p.pathFrames.direct,
          rtt_ms: p.rttMs,
          rtt_hub_ms: p.rttHubMs,
          rtt_direct_ms: p.rttDirectMs,
        })),
    };
  }
}
