import type { AnyStateMachine } from 'xstate';
import { toDirectedGraph } from 'xstate/graph';
import { transitionLabel } from '../diagram/mermaid.js';

/** A machine's top-level states and the transitions between them (what the page draws). */
export interface StateGraph {
  initial: string;
  /** In definition order. */
  states: string[];
  /** One per (source, target) pair, self-loops left out; `labels` lists every transition's cause. */
  edges: { source: string; target: string; labels: string[] }[];
}

export interface DiagramNode {
  id: string;
  column: number;
  row: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface DiagramEdge {
  source: string;
  target: string;
  /** Also drawn: the transition back (target -> source), as a second arrowhead on the same line. */
  both: boolean;
  /** SVG path data. */
  path: string;
  title: string;
}

export interface DiagramLayout {
  width: number;
  height: number;
  nodes: DiagramNode[];
  edges: DiagramEdge[];
}

/** The top-level states of `machine` and their transitions, via `toDirectedGraph`. */
export function stateGraph(machine: AnyStateMachine): StateGraph {
  const graph = toDirectedGraph(machine);
  const states = graph.children.map((child) => child.stateNode.key);
  const topLevel = (path: string[]) => path[0];
  const byPair = new Map<string, StateGraph['edges'][number]>();
  const add = (source: string | undefined, target: string | undefined, label: string) => {
    if (!source || !target || source === target) return;
    const key = `${source}\u0000${target}`;
    const edge = byPair.get(key) ?? { source, target, labels: [] };
    if (!edge.labels.includes(label)) edge.labels.push(label);
    byPair.set(key, edge);
  };
  const visit = (node: (typeof graph.children)[number]) => {
    for (const edge of node.edges) add(topLevel(edge.source.path), topLevel(edge.target.path), transitionLabel(edge.transition));
    for (const transition of node.stateNode.always ?? []) {
      for (const target of transition.target ?? []) add(topLevel(node.stateNode.path), topLevel(target.path), transitionLabel(transition));
    }
    node.children.forEach(visit);
  };
  graph.children.forEach(visit);
  const initial = machine.root.initial?.target[0]?.key ?? states[0] ?? '';
  return { initial, states, edges: [...byPair.values()] };
}

export const BOX = { width: 104, height: 34, gapX: 28, gapY: 40, margin: 12, arc: 22 } as const;

/**
 * A small left-to-right layout. The spine (row 0) follows each state's first transition from the
 * initial state until it comes back to a state already placed: for the account machine that is
 * the happy path idle, fetching, applying, downloading, finishing. Every other state goes in a row
 * below, centred under the spine states it is connected to (so `backoff` sits under the middle of
 * the steps that fail into it); when that spot is taken, one column to its left or right
 * (`awaitingRelink` beside `backoff`), and only when those are taken too a row further down. Pure:
 * the same graph always gives the same layout.
 */
export function layoutDiagram(graph: StateGraph): DiagramLayout {
  const column = new Map<string, number>();
  const row = new Map<string, number>();
  for (let state: string | undefined = graph.initial; state !== undefined && graph.states.includes(state) && !column.has(state); ) {
    column.set(state, column.size);
    row.set(state, 0);
    const from: string = state;
    state = graph.edges.find((e) => e.source === from)?.target;
  }
  const neighbours = (state: string) => graph.edges.flatMap((e) => (e.source === state ? [e.target] : e.target === state ? [e.source] : []));
  let rest = graph.states.filter((s) => !column.has(s));
  while (rest.length) {
    // Place the state with the most placed neighbours next (definition order breaks ties).
    const scored = rest.map((state) => ({ state, placed: [...new Set(neighbours(state))].filter((n) => column.has(n)) }));
    const best = scored.reduce((a, b) => (b.placed.length > a.placed.length ? b : a));
    const want = best.placed.length ? best.placed.reduce((sum, n) => sum + column.get(n)!, 0) / best.placed.length : 0;
    // Beside a state already in the row before a row further down: a line from a lower row up to
    // the spine would cross the boxes between them.
    const taken = (r: number, c: number) => [...column.keys()].some((s) => row.get(s) === r && Math.abs(column.get(s)! - c) < 1);
    let spot: { r: number; c: number } | undefined;
    for (let r = 1; !spot; r++) {
      const c = [0, -1, 1, -2, 2].map((offset) => want + offset).find((candidate) => candidate >= 0 && !taken(r, candidate));
      if (c !== undefined) spot = { r, c };
    }
    column.set(best.state, spot.c);
    row.set(best.state, spot.r);
    rest = rest.filter((s) => s !== best.state);
  }

  // Room above the first row for the arcs of long jumps along it (a cubic's peak is 3/4 of its lift).
  const longest = Math.max(1, ...graph.edges.filter((e) => row.get(e.source) === row.get(e.target)).map((e) => Math.abs(column.get(e.source)! - column.get(e.target)!)));
  const top = BOX.margin + Math.ceil(0.75 * arcLift(longest));
  const nodes: DiagramNode[] = graph.states.map((id) => {
    const c = column.get(id)!;
    const r = row.get(id)!;
    return { id, column: c, row: r, x: BOX.margin + c * (BOX.width + BOX.gapX), y: top + r * (BOX.height + BOX.gapY), width: BOX.width, height: BOX.height };
  });
  const node = new Map(nodes.map((n) => [n.id, n]));

  const edges: DiagramEdge[] = [];
  const drawn = new Set<string>();
  for (const edge of graph.edges) {
    const pair = [edge.source, edge.target].sort().join('\u0000');
    if (drawn.has(pair)) continue;
    drawn.add(pair);
    const back = graph.edges.find((e) => e.source === edge.target && e.target === edge.source);
    const a = node.get(edge.source)!;
    const b = node.get(edge.target)!;
    const title = [`${edge.source} → ${edge.target}: ${edge.labels.join(', ')}`, ...(back ? [`${back.source} → ${back.target}: ${back.labels.join(', ')}`] : [])].join('\n');
    edges.push({ source: edge.source, target: edge.target, both: Boolean(back), path: edgePath(a, b), title });
  }

  const width = Math.max(...nodes.map((n) => n.x + n.width)) + BOX.margin;
  const height = Math.max(...nodes.map((n) => n.y + n.height)) + BOX.margin;
  return { width, height, nodes, edges };
}

const arcLift = (span: number) => (span <= 1 ? 0 : BOX.arc * span);

const r = (n: number) => Math.round(n * 10) / 10;

function edgePath(a: DiagramNode, b: DiagramNode): string {
  const ay = a.y + a.height / 2;
  const by = b.y + b.height / 2;
  if (a.row === b.row && Math.abs(a.column - b.column) === 1) {
    // Neighbours on a row: a straight line between the facing sides.
    const [x1, x2] = a.column < b.column ? [a.x + a.width, b.x] : [a.x, b.x + b.width];
    return `M${r(x1)},${r(ay)} L${r(x2)},${r(by)}`;
  }
  if (a.row === b.row) {
    // Further along the same row: an arc over the boxes in between, higher for longer jumps.
    const span = Math.abs(a.column - b.column);
    const away = a.column < b.column ? -1 : 1;
    const x1 = a.x + a.width / 2 + away * (span - 2) * 16;
    const x2 = b.x + b.width / 2;
    const lift = arcLift(span);
    const y = a.y;
    return `M${r(x1)},${r(y)} C${r(x1)},${r(y - lift)} ${r(x2)},${r(y - lift)} ${r(x2)},${r(y)}`;
  }
  // Between rows: from the facing edge of one box to the other's.
  const down = a.row < b.row;
  const x1 = a.x + a.width / 2 + (b.column - a.column) * 12;
  const x2 = b.x + b.width / 2 + (a.column - b.column) * 12;
  const y1 = down ? a.y + a.height : a.y;
  const y2 = down ? b.y : b.y + b.height;
  return `M${r(clamp(x1, a.x + 6, a.x + a.width - 6))},${r(y1)} L${r(clamp(x2, b.x + 6, b.x + b.width - 6))},${r(y2)}`;
}

const clamp = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, n));

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/**
 * The layout as an SVG fragment (no inline `style`, so a strict CSP holds): each state a `<g
 * class="state" data-state="...">` the page's script marks `current`, each edge a path with
 * arrowheads and a `<title>` naming its transitions.
 */
export function renderDiagramSvg(layout: DiagramLayout): string {
  const parts = [
    `<svg class="diagram" viewBox="0 0 ${layout.width} ${layout.height}" width="${layout.width}" height="${layout.height}" role="img" aria-label="state diagram">`,
    '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7.5" refY="4" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/></marker></defs>',
  ];
  for (const edge of layout.edges) {
    parts.push(
      `<path class="edge" data-edge="${escapeHtml(edge.source)}-${escapeHtml(edge.target)}" d="${edge.path}" fill="none" marker-end="url(#arrow)"${edge.both ? ' marker-start="url(#arrow)"' : ''}><title>${escapeHtml(edge.title)}</title></path>`,
    );
  }
  for (const node of layout.nodes) {
    const id = escapeHtml(node.id);
    parts.push(
      `<g class="state" data-state="${id}"><rect x="${node.x}" y="${node.y}" width="${node.width}" height="${node.height}" rx="8" ry="8"/>` +
        `<text x="${node.x + node.width / 2}" y="${node.y + node.height / 2}" text-anchor="middle" dominant-baseline="central">${id}</text></g>`,
    );
  }
  parts.push('</svg>');
  return parts.join('');
}
