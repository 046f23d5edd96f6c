import type { Detection } from '../../contracts/topics.js';
import type { InferenceConfig, VerdictRule } from './config.js';

/** Keep detections whose box centre lies inside the region of interest. */
export function applyRoi(dets: Detection[], roi: InferenceConfig['roi'], width: number, height: number): Detection[] {
  if (!roi) return dets;
  const [sx, sy] = roi.units === 'fraction' ? [width, height] : [1, 1];
  const x1 = roi.x1 * sx;
  const x2 = roi.x2 * sx;
  const y1 = roi.y1 * sy;
  const y2 = roi.y2 * sy;
  return dets.filter((d) => {
    const cx = (d.xyxy[0] + d.xyxy[2]) / 2;
    const cy = (d.xyxy[1] + d.xyxy[3]) / 2;
    return cx >= x1 && cx <= x2 && cy >= y1 && cy <= y2;
  });
}

/** Pass/fail: the frame fails when any rule fires; the names of the rules that fired are the reasons. */
export function verdict(dets: Detection[], rules: VerdictRule[]): { verdict: 'pass' | 'fail'; reasons: string[] } {
  const reasons: string[] = [];
  for (const r of rules) {
    const cls = r.classes ? new Set(r.classes.map(String)) : undefined;
    const n = dets.filter((d) => d.conf >= r.minConf && (!cls || cls.has(d.name) || cls.has(String(d.cls)))).length;
    if (n >= r.minCount) reasons.push(r.name);
  }
  return { verdict: reasons.length ? 'fail' : 'pass', reasons };
}
