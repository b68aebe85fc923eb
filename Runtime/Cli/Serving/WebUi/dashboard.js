// The dashboard: polls /dashboard/stats once a second and shows the figures as tiles and as charts of the last
// two minutes.

import { LineChart } from './charts.js';

const $ = (id) => document.getElementById(id);
const mib = (bytes) => bytes / (1024 * 1024);
const fixed = (digits) => (v) => v.toFixed(digits);
const ms = (v) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`);

const colors = { blue: '#2f6fde', orange: '#e07b20', green: '#2b9a5a', purple: '#8a4fd0', grey: '#8a8f98' };
const charts = {
  tps: new LineChart($('chart-tps'), [{ label: 'tokens/s', color: colors.blue }], { format: fixed(0), legend: $('legend-tps') }),
  sequences: new LineChart($('chart-sequences'), [
    { label: 'active', color: colors.green },
    { label: 'queued', color: colors.orange },
  ], { format: fixed(0), legend: $('legend-sequences') }),
  ttft: new LineChart($('chart-ttft'), [
    { label: 'p50', color: colors.blue },
    { label: 'p90', color: colors.purple },
    { label: 'p99', color: colors.orange },
  ], { format: fixed(0), legend: $('legend-ttft') }),
  memory: new LineChart($('chart-memory'), [
    { label: 'working set', color: colors.purple },
    { label: 'managed heap', color: colors.grey },
  ], { format: fixed(0), legend: $('legend-memory') }),
};

function show(stats) {
  const { requests, tokens, ttft_ms: ttft, memory, batch } = stats;
  $('model').textContent = stats.model;
  $('tps').textContent = tokens.per_second.toFixed(1);
  $('tokens-total').textContent = `${tokens.generated.toLocaleString('en')} generated`;
  $('generating').textContent = String(requests.generating);
  $('occupancy').textContent = batch
    ? `batch ${batch.size}/${batch.capacity} (${Math.round(100 * batch.size / batch.capacity)}%)`
    : `${requests.generating} of ${requests.parallel} slots (${Math.round(100 * requests.generating / requests.parallel)}%)`;
  $('waiting').textContent = String(requests.waiting);
  $('queue-limit').textContent = `limit ${requests.queue_limit}`;
  $('ttft-p50').textContent = ttft.p50 === null ? '–' : ms(ttft.p50);
  $('ttft-tail').textContent = ttft.p50 === null
    ? 'no requests in the last minute'
    : `p90 ${ms(ttft.p90)} · p99 ${ms(ttft.p99)} · ${ttft.count} requests`;
  $('requests').textContent = requests.total.toLocaleString('en');
  $('outcomes').textContent = `${requests.completed} completed · ${requests.cancelled} stopped · ${requests.refused} refused`;
  $('memory').textContent = `${mib(memory.working_set_bytes).toFixed(0)} MiB`;
  $('heap').textContent = `managed heap ${mib(memory.managed_heap_bytes).toFixed(1)} MiB`;

  charts.tps.push([tokens.per_second]);
  charts.sequences.push([requests.generating, requests.waiting]);
  charts.ttft.push([ttft.p50, ttft.p90, ttft.p99]);
  charts.memory.push([mib(memory.working_set_bytes), mib(memory.managed_heap_bytes)]);
}

async function tick() {
  const status = $('status');
  try {
    const response = await fetch('/dashboard/stats', { cache: 'no-store' });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    show(await response.json());
    status.textContent = `updated ${new Date().toLocaleTimeString('en-GB')}`;
    status.classList.remove('error');
  } catch (error) {
    status.textContent = `cannot reach the server: ${error.message}`;
    status.classList.add('error');
  } finally {
    setTimeout(tick, 1000);
  }
}

window.addEventListener('resize', () => Object.values(charts).forEach((chart) => chart.draw()));
tick();
