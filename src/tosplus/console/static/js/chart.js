// Charts with the vendored uPlot (static/vendor/uplot, see its README). The script is loaded on the first
// chart only, so pages without one (and the first page load) do not pay for it.

import { h } from './ui.js';

const VERSION = '1.6.32';
let loading = null;

function loadUPlot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  loading ??= new Promise((resolve, reject) => {
    document.head.append(h('link', { rel: 'stylesheet', href: `vendor/uplot/uPlot.min.css?v=${VERSION}` }));
    const script = h('script', { src: `vendor/uplot/uPlot.iife.min.js?v=${VERSION}` });
    script.onload = () => resolve(window.uPlot);
    script.onerror = () => {
      loading = null;
      reject({ words: 'The chart could not be loaded from the hub' });
    };
    document.head.append(script);
  });
  return loading;
}

function widthOf(container) {
  return Math.max(200, Math.floor(container.getBoundingClientRect().width || container.clientWidth || 300));
}

/**
 * A time series chart in `container`. `xs` are seconds since the epoch (uPlot's unit), `ys` values (null =
 * gap). Returns {setData(xs, ys), destroy()}; the chart follows the container's width.
 */
export async function timeChart(container, { label, unit = '', height = 240, xs = [], ys = [] }) {
  const uPlot = await loadUPlot();
  const plot = new uPlot(
    {
      width: widthOf(container),
      height,
      series: [{}, { label: unit ? `${label} (${unit})` : label, stroke: '#2563eb', width: 2, spanGaps: false, points: { show: xs.length < 60 } }],
      axes: [{}, { size: 60 }],
      cursor: { drag: { x: true, y: false } },
    },
    [xs, ys],
    container,
  );
  const resize = new ResizeObserver(() => plot.setSize({ width: widthOf(container), height }));
  resize.observe(container);
  return {
    setData(newXs, newYs) {
      plot.setData([newXs, newYs]);
    },
    destroy() {
      resize.disconnect();
      plot.destroy();
    },
  };
}

/** A small line without axes (the operator's ingest rate). */
export async function sparkline(container, { height = 60, points = 60 } = {}) {
  const uPlot = await loadUPlot();
  const xs = [];
  const ys = [];
  const plot = new uPlot(
    {
      width: widthOf(container),
      height,
      legend: { show: false },
      cursor: { show: false },
      series: [{}, { stroke: '#16a34a', fill: 'rgba(22,163,74,0.12)', width: 2 }],
      axes: [{ show: false }, { show: true, size: 50, ticks: { show: false } }],
      scales: { y: { range: (u, min, max) => [0, Math.max(1, max * 1.2)] } },
    },
    [xs, ys],
    container,
  );
  const resize = new ResizeObserver(() => plot.setSize({ width: widthOf(container), height }));
  resize.observe(container);
  return {
    push(x, y) {
      xs.push(x);
      ys.push(y);
      if (xs.length > points) {
        xs.shift();
        ys.shift();
      }
      plot.setData([xs, ys]);
    },
    destroy() {
      resize.disconnect();
      plot.destroy();
    },
  };
}
