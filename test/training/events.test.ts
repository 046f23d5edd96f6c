import { describe, expect, it } from 'vitest';
import { metricDefinitions, parseTrainLine, METRIC_KEYS } from '../../cloud/training/events.js';

// A line exactly as train.py prints it (format of `"loupe-metric " + " ".join(f"{k}={v}" ...)`).
const metricLine =
  'loupe-metric epoch=3 epochs=3 seconds=98.486 box_loss=1.07708 cls_loss=0.63433 dfl_loss=1.49083 precision=0.86129 recall=0.81707 map50=0.85856 map50_95=0.59269';

describe('train.py output lines', () => {
  it('classifies events, refusals, metrics and plain text', () => {
    expect(parseTrainLine('LOUPE_EVENT {"event": "export", "format": "onnx"}')).toEqual({
      kind: 'event',
      event: { event: 'export', format: 'onnx' },
    });
    expect(parseTrainLine('LOUPE_ERROR {"code": "DATA_EMPTY", "message": "x: no images"}')).toEqual({
      kind: 'error',
      error: { code: 'DATA_EMPTY', message: 'x: no images' },
    });
    const m = parseTrainLine(metricLine);
    expect(m.kind).toBe('metric');
    expect(m.kind === 'metric' && m.values).toEqual({
      epoch: 3,
      epochs: 3,
      seconds: 98.486,
      box_loss: 1.07708,
      cls_loss: 0.63433,
      dfl_loss: 1.49083,
      precision: 0.86129,
      recall: 0.81707,
      map50: 0.85856,
      map50_95: 0.59269,
    });
    expect(parseTrainLine('      Epoch    GPU_mem   box_loss')).toEqual({ kind: 'text', text: '      Epoch    GPU_mem   box_loss' });
    // a torn JSON line stays text rather than crashing the driver
    expect(parseTrainLine('LOUPE_EVENT {"event": "ep').kind).toBe('text');
  });

  it('MetricDefinitions pick exactly each value out of a loupe-metric line (map50 never matches map50_95)', () => {
    const defs = metricDefinitions();
    expect(defs.map((d) => d.Name)).toEqual([
      'epoch',
      'train:seconds',
      'train:box_loss',
      'train:cls_loss',
      'train:dfl_loss',
      'val:precision',
      'val:recall',
      'val:map50',
      'val:map50_95',
    ]);
    const got = Object.fromEntries(defs.map((d) => [d.Name, Number(new RegExp(d.Regex).exec(metricLine)?.[1])]));
    expect(got).toEqual({
      epoch: 3,
      'train:seconds': 98.486,
      'train:box_loss': 1.07708,
      'train:cls_loss': 0.63433,
      'train:dfl_loss': 1.49083,
      'val:precision': 0.86129,
      'val:recall': 0.81707,
      'val:map50': 0.85856,
      'val:map50_95': 0.59269,
    });
    // keys in another order still resolve to their own values
    const shuffled = 'loupe-metric map50_95=0.5 map50=0.8 epochs=9 epoch=2';
    expect(new RegExp(defs.find((d) => d.Name === 'val:map50')!.Regex).exec(shuffled)?.[1]).toBe('0.8');
    expect(new RegExp(defs.find((d) => d.Name === 'epoch')!.Regex).exec(shuffled)?.[1]).toBe('2');
    expect(METRIC_KEYS).toContain('map50_95');
  });
});
