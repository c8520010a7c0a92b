// A stacked bar chart drawn as inline SVG: one bar per period, one colour per series.
// Every bar segment carries its figures as data-* attributes and a <title>, so what is
// drawn can be read back (and checked against the API) exactly.

const SVG = "http://www.w3.org/2000/svg";
// Colour-blind-safe palette (Okabe-Ito), dark enough on white for 3:1 non-text contrast.
export const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#000000", "#E69F00",
  "#56B4E9", "#7a6a00"];

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

// periods: [label]; series: [name]; value(period, series) -> number.
export function stackedBars({ periods, series, value, title, unit }) {
  const width = 760, height = 280, left = 64, right = 12, top = 16, bottom = 48;
  const plotW = width - left - right, plotH = height - top - bottom;
  const totals = periods.map((p) => series.reduce((sum, s) => sum + value(p, s), 0));
  const max = niceMax(Math.max(0, ...totals));
  const scale = plotH / max;
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart",
    "data-scale": scale,
  });
  svg.append(el("title", {}, title));
  for (let i = 0; i <= 4; i += 1) {
    const v = (max * i) / 4, y = top + plotH - v * scale;
    svg.append(el("line", { x1: left, x2: width - right, y1: y, y2: y, class: "grid" }));
    svg.append(el("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "tick" },
      v.toLocaleString("en")));
  }
  const slot = plotW / Math.max(1, periods.length);
  const barW = Math.max(2, Math.min(48, slot * 0.7));
  periods.forEach((period, i) => {
    let y = top + plotH;
    const x = left + i * slot + (slot - barW) / 2;
    series.forEach((name, j) => {
      const v = value(period, name);
      if (!v) return;
      const h = v * scale;
      y -= h;
      const rect = el("rect", {
        x, y, width: barW, height: h, fill: PALETTE[j % PALETTE.length],
        "data-period": period, "data-series": name, "data-value": v,
      });
      rect.append(el("title", {}, `${period} ${name}: ${v.toLocaleString("en")} ${unit}`));
      svg.append(rect);
    });
    const every = Math.ceil(periods.length / 12);
    if (i % every === 0) {
      svg.append(el("text", { x: x + barW / 2, y: height - bottom + 16, "text-anchor": "middle",
        class: "tick" }, period.length > 10 ? period.slice(5, 16).replace("T", " ") : period.slice(5)));
    }
  });
  svg.append(el("line", { x1: left, x2: width - right, y1: top + plotH, y2: top + plotH,
    class: "axis" }));
  const figure = document.createElement("figure");
  figure.append(svg);
  const legend = document.createElement("ul");
  legend.className = "legend";
  series.forEach((name, j) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = PALETTE[j % PALETTE.length];
    item.append(swatch, document.createTextNode(name));
    legend.append(item);
  });
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  figure.append(legend, caption);
  return figure;
}
