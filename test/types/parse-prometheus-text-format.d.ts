// parse-prometheus-text-format ships no types: one default export, text in, metric families out.
declare module 'parse-prometheus-text-format' {
  export default function parsePrometheusTextFormat(text: string): unknown[];
}
