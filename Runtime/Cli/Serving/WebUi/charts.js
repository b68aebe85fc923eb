// A small line chart on a canvas: a few series sharing one y axis from 0, the last `capacity` samples, newest on
// the right. No library: the dashboard needs lines, a grid and a legend, nothing more.

export class LineChart {
  /**
   * @param {HTMLCanvasElement} canvas where to draw; its CSS size decides the chart's size
   * @param {{label: string, color: string}[]} series one line each
   * @param {{format?: (v: number) => string, capacity?: number, legend?: HTMLElement}} options
   */
  constructor(canvas, series, { format = (v) => String(v), capacity = 120, legend = null } = {}) {
    this.canvas = canvas;
    this.series = series;
    this.format = format;
    this.capacity = capacity;
    this.samples = [];   // arrays of numbers (or null where unknown), aligned with series
    this.legendValues = [];
    if (legend) {
      for (const s of series) {
        const item = document.createElement('span');
        item.className = 'legend-item';
        const swatch = document.createElement('span');
        swatch.className = 'swatch';
        swatch.style.backgroundColor = s.color;
        const value = document.createElement('span');
        value.className = 'legend-value';
        item.append(swatch, s.label, ' ', value);
        legend.append(item);
        this.legendValues.push(value);
      }
    }
  }

  /** Adds one sample (one value per series) and redraws. */
  push(values) {
    this.samples.push(values);
    if (this.samples.length > this.capacity) this.samples.shift();
    values.forEach((v, i) => {
      if (this.legendValues[i]) this.legendValues[i].textContent = v === null ? '–' : this.format(v);
    });
    this.canvas.dataset.samples = String(this.samples.length);
    this.draw();
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (width === 0 || height === 0) return;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const left = 56;
    const right = 8;
    const top = 8;
    const bottom = 8;
    const plotWidth = width - left - right;
    const plotHeight = height - top - bottom;
    let max = 0;
    for (const sample of this.samples) {
      for (const v of sample) if (v !== null && v > max) max = v;
    }
    const ceiling = niceCeiling(max);
    const y = (v) => top + plotHeight * (1 - v / ceiling);
    const x = (i) => left + plotWidth * (this.capacity === 1 ? 1 : (i + this.capacity - this.samples.length) / (this.capacity - 1));

    const styles = getComputedStyle(canvas);
    ctx.font = `11px ${styles.fontFamily}`;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    ctx.lineWidth = 1;
    for (const fraction of [0, 0.5, 1]) {
      const v = ceiling * fraction;
      ctx.strokeStyle = styles.getPropertyValue('--grid') || '#ddd';
      ctx.beginPath();
      ctx.moveTo(left, Math.round(y(v)) + 0.5);
      ctx.lineTo(width - right, Math.round(y(v)) + 0.5);
      ctx.stroke();
      ctx.fillStyle = styles.getPropertyValue('--muted') || '#777';
      ctx.fillText(axisLabel(v), left - 6, y(v));
    }

    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    this.series.forEach((s, k) => {
      ctx.strokeStyle = s.color;
      ctx.beginPath();
      let drawing = false;
      this.samples.forEach((sample, i) => {
        const v = sample[k];
        if (v === null || v === undefined) {
          drawing = false;
          return;
        }
        if (drawing) ctx.lineTo(x(i), y(v));
        else ctx.moveTo(x(i), y(v));
        drawing = true;
      });
      ctx.stroke();
    });
  }
}

/** A grid line's label: at most two decimals, tens of thousands as k. */
function axisLabel(v) {
  if (v >= 10000) return `${(v / 1000).toFixed(0)}k`;
  return String(Math.round(v * 100) / 100);
}

/** The smallest of 1, 2, 2.5, 5 times a power of ten at or above v (1 when v is 0). */
export function niceCeiling(v) {
  if (!(v > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= v) return step * power;
  }
  return 10 * power;
}
