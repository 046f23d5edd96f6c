import { describe, expect, it } from 'vitest';
import { decideGate, validateGateConfig, DEFAULT_GATE } from '../../cloud/gate/decide.js';
import { choosePrecision, DEFAULT_INT8 } from '../../cloud/gate/precision.js';
import { renderGateHtml, prChartSvg, type GateReport } from '../../cloud/gate/report.js';

describe('gate rule', () => {
  const cfg = { ...DEFAULT_GATE, threshold: 0.6, tolerance: 0.02 };
  it.each<[number, number | null, boolean, string]>([
    // challenger, champion, passed, why
    [0.7, 0.7, true, 'equal to champion'],
    [0.68, 0.7, true, 'exactly champion - tolerance'],
    [0.679, 0.7, false, 'just below champion - tolerance'],
    [0.59, null, false, 'first model below threshold'],
    [0.6, null, true, 'first model at threshold'],
    [0.95, 0.5, true, 'clearly better'],
    [0.59, 0.55, false, 'better than champion but below threshold'],
  ])('challenger %s vs champion %s → passed=%s (%s)', (a, b, passed) => {
    const d = decideGate(cfg, a, b);
    expect(d.passed).toBe(passed);
    expect(d.reasons.length).toBe(2);
  });

  it('names the failing comparison in its reasons', () => {
    const d = decideGate(cfg, 0.5, 0.9);
    expect(d.reasons).toEqual(['map50 0.5000 < threshold 0.6000', 'map50 0.5000 < champion 0.9000 - tolerance 0.0200 = 0.8800']);
  });

  it('validates its configuration, naming the key', () => {
    expect(validateGateConfig({ metric: 'map50_95' }).metric).toBe('map50_95');
    expect(() => validateGateConfig({ metric: 'f1' as never })).toThrow(
      /gate\.metric: metric must be one of map50, map50_95, precision, recall, got "f1"/,
    );
    expect(() => validateGateConfig({ threshold: 1.5 })).toThrow(/gate\.threshold/);
    expect(() => validateGateConfig({ tolerance: -0.1 })).toThrow(/gate\.tolerance/);
    expect(() => validateGateConfig({ split: 'dev' as never })).toThrow(/gate\.split/);
  });
});

describe('which file the fleet runs: fp32 or int8', () => {
  it.each<[number, number, number, 'fp32' | 'int8', string]>([
    // fp32, int8, tolerance, deployed
    [0.9, 0.9, 0.015, 'int8', 'int8 as good'],
    [0.9, 0.91, 0, 'int8', 'int8 better, tight tolerance'],
    [0.9, 0.885, 0.015, 'int8', 'exactly fp32 - tolerance'],
    [0.9, 0.8849, 0.015, 'fp32', 'just below fp32 - tolerance'],
    [0.68, 0.675, 0, 'fp32', 'tight tolerance: any loss keeps fp32'],
    [0.68, 0.675, 0.015, 'int8', 'default tolerance: a 0.005 loss is fine'],
  ])('fp32 %s, int8 %s, tolerance %s → %s (%s)', (fp32, int8, tolerance, deployed) => {
    expect(choosePrecision({ metric: 'map50', tolerance }, fp32, int8).deployed).toBe(deployed);
  });

  it('defaults to 0.015 mAP50, says why, and keeps fp32 when there is no int8 model', () => {
    expect(DEFAULT_INT8).toEqual({ enabled: true, tolerance: 0.015, metric: 'map50', calibrationImages: 64 });
    expect(choosePrecision(DEFAULT_INT8, 0.9, 0.88)).toEqual({
      deployed: 'fp32',
      metric: 'map50',
      fp32: 0.9,
      int8: 0.88,
      tolerance: 0.015,
      reason: 'int8 map50 0.8800 < fp32 0.9000 - tolerance 0.0150 = 0.8850: the fleet keeps fp32',
    });
    expect(choosePrecision(DEFAULT_INT8, 0.9, 0.895).reason).toBe('int8 map50 0.8950 >= fp32 0.9000 - tolerance 0.0150');
    expect(choosePrecision(DEFAULT_INT8, 0.9, null)).toMatchObject({ deployed: 'fp32', reason: 'no int8 model (quantization off)' });
    expect(() => choosePrecision({ metric: 'f1' as never, tolerance: 0.01 }, 0.9, 0.9)).toThrow(/int8\.metric/);
    expect(() => choosePrecision({ metric: 'map50', tolerance: 2 }, 0.9, 0.9)).toThrow(/int8\.tolerance/);
  });
});

describe('gate report page', () => {
  const curve = (k: number) => {
    const recall = Array.from({ length: 1000 }, (_, i) => i / 999);
    return { recall, precision: recall.map((r) => Math.max(0, 1 - r ** k)) };
  };
  const report: GateReport = {
    passed: false,
    reasons: ['map50 0.5000 < champion 0.9000 - tolerance 0.0200 = 0.8800', '<script>alert(1)</script>'],
    config: { ...DEFAULT_GATE },
    data: '/tmp/snap/data.yaml',
    datasetVersion: 'abc123',
    challenger: {
      ref: 'metal-tags:2',
      model: '/x/challenger.onnx',
      eval: {
        images: 35,
        instances: 73,
        map50: 0.5,
        map50_95: 0.3,
        precision: 0.6,
        recall: 0.5,
        per_class: [{ cls: 0, name: 'scratch', instances: 73, ap50: 0.5, ap50_95: 0.3 }],
      },
      curves: [{ cls: 0, name: 'scratch', ...curve(1) }],
      seconds: 3.2,
    },
    champion: {
      ref: 'metal-tags:1',
      model: '/x/champion.onnx',
      eval: {
        images: 35,
        instances: 73,
        map50: 0.9,
        map50_95: 0.63,
        precision: 0.88,
        recall: 0.85,
        per_class: [{ cls: 0, name: 'scratch', instances: 73, ap50: 0.9, ap50_95: 0.63 }],
      },
      curves: [{ cls: 0, name: 'scratch', ...curve(6) }],
      seconds: 3.1,
    },
    createdAt: '2024-01-01T00:00:00.000Z',
  };

  it('is one self-contained page with both PR curves and the verdict, escaping text', () => {
    const html = renderGateHtml(report);
    expect(html).toContain('REJECTED');
    expect(html).not.toMatch(/<script|src=|href=|@import|url\(/i);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect((html.match(/<svg/g) ?? []).length).toBe(1);
    expect((html.match(/<polyline/g) ?? []).length).toBe(2);
    expect(html).toContain('challenger metal-tags:2');
    expect(html).toContain('champion metal-tags:1');
    expect(html).toContain('-0.4000'); // map50 delta
  });

  it('shows which file the fleet runs, fp32 or int8, with both scores', () => {
    const html = renderGateHtml({
      ...report,
      fleetPrecision: { ...choosePrecision(DEFAULT_INT8, 0.5, 0.49), fp32Model: '/x/model.onnx', int8Model: '/x/model.int8.onnx' },
    });
    expect(html).toContain("Precision of the challenger's file");
    expect(html).toContain('The fleet runs the <b>int8</b> file: int8 map50 0.4900 &gt;= fp32 0.5000 - tolerance 0.0150');
    expect(html).toContain('/x/model.int8.onnx');
    expect(html).toMatch(/<tr class="gated"><th>int8<\/th><td>0\.4900<\/td>/);
    expect(renderGateHtml(report)).not.toContain("Precision of the challenger's file");
  });

  it('draws curves in the plot box (recall 0..1 left→right, precision 0..1 bottom→top), thinned to 200 points', () => {
    const svg = prChartSvg('t', [{ label: 'a', color: '#000', recall: [0, 0.5, 1], precision: [1, 0.5, 0] }]);
    const pts = /points="([^"]+)"/
      .exec(svg)![1]!
      .split(' ')
      .map((p) => p.split(',').map(Number));
    expect(pts).toEqual([
      [48, 28],
      [228, 154],
      [408, 280],
    ]);
    const long = prChartSvg('t', [{ label: 'a', color: '#000', ...curve(2) }]);
    expect(/points="([^"]+)"/.exec(long)![1]!.split(' ').length).toBe(200);
  });
});
