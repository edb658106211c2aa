/** A tiny element builder; the page is small enough not to need a framework. */
type Attrs = Record<string, string | number | boolean | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Array<Node | string | null | undefined>
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') el.className = String(v);
    else if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

/** Button with a test id and an accessible label. */
export function button(testId: string, label: string | Node, title: string, onClick: () => void): HTMLButtonElement {
  const b = h('button', { type: 'button', 'data-testid': testId, title, 'aria-label': title }, label);
  b.addEventListener('click', onClick);
  return b;
}

const ICONS = {
  // Two overlapping squares.
  duplicate: '<rect x="5" y="5" width="9" height="9" rx="1"/><path d="M2 11V3a1 1 0 0 1 1-1h8"/>',
  // A bin.
  trash: '<path d="M2 4h12M6 4V2.5h4V4M3.5 4l1 10h7l1-10M6.5 7v5M9.5 7v5"/>',
} as const;

/** Inline SVG icon: no icon font to load, and no missing-glyph boxes. */
export function icon(name: keyof typeof ICONS): SVGSVGElement {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('width', '14');
  svg.setAttribute('height', '14');
  svg.setAttribute('fill', 'none');
  svg.setAttribute('stroke', 'currentColor');
  svg.setAttribute('stroke-width', '1.4');
  svg.setAttribute('aria-hidden', 'true');
  svg.innerHTML = ICONS[name];
  return svg;
}
