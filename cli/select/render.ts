import { renderTable } from '../table.js';
import type { Ranking } from './pick-nodes.js';

/** The `--node-count` choice: picked nodes first, then the other candidates, then the rest. */
export function renderRanking(ranking: Ranking, chosen: number): string {
  const rows = [
    ...ranking.ranked.map((r, i) => [
      r.node.name,
      i < chosen ? 'picked' : 'candidate',
      String(r.node.gpus),
      String(r.node.gpusRequested),
      r.note,
    ]),
    ...ranking.excluded.map((e) => [
      e.node.name,
      'skipped',
      String(e.node.gpus),
      String(e.node.gpusRequested),
      e.reason,
    ]),
  ];
  return renderTable(['NODE', 'CHOICE', 'GPUS', 'REQUESTED', 'WHY'], rows);
}
