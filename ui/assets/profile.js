// Rendering of a dataset-profile payload (final or partial): a column table, and per column a
// histogram (numeric columns) and a top-values chart.
import { histogramChart, topValuesChart } from './charts.js';
import { h, num } from './dom.js';

/** Whether a payload has the dataset-profile shape `{rows, malformed_rows, columns: [...]}`. */
export function isProfile(p) {
  return p !== null && typeof p === 'object' && typeof p.rows === 'number' && Array.isArray(p.columns) && p.columns.every((c) => c && typeof c.name === 'string' && typeof c.type === 'string');
}

function headline(p) {
  return h(
    'p',
    { class: 'profile-headline' },
    h('strong', null, num(p.rows)), ' rows · ',
    h('strong', null, num(p.columns.length)), ' columns · ',
    h('strong', { class: p.malformed_rows > 0 ? 'error-text' : null }, num(p.malformed_rows ?? 0)), ' malformed rows',
  );
}

/** The column table: one row per column with its statistics. */
export function columnTable(p) {
  const cols = ['Column', 'Type', 'Count', 'Nulls', 'Distinct', 'Min', 'Max', 'Mean', 'Std dev', 'p25', 'p50', 'p75', 'p95'];
  return h(
    'div',
    { class: 'table-scroll' },
    h(
      'table',
      { class: 'profile-columns' },
      h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        null,
        p.columns.map((c) =>
          h(
            'tr',
            { 'data-column': c.name },
            h('th', { scope: 'row' }, c.name),
            h('td', null, h('span', { class: `type type-${c.type}` }, c.type)),
            h('td', { class: 'n' }, num(c.count)),
            h('td', { class: 'n' }, num(c.nulls)),
            h('td', { class: 'n' }, `${c.distinct_is_estimate ? '≈' : ''}${num(c.distinct)}`),
            h('td', { class: 'n' }, num(c.min)),
            h('td', { class: 'n' }, num(c.max)),
            h('td', { class: 'n' }, num(c.mean)),
            h('td', { class: 'n' }, num(c.stddev)),
            ['p25', 'p50', 'p75', 'p95'].map((q) => h('td', { class: 'n' }, num(c.quantiles?.[q]))),
          ),
        ),
      ),
    ),
  );
}

/** Compact view for partial snapshots: headline and column table. */
export function profileSummary(p) {
  return h('div', { class: 'profile' }, headline(p), columnTable(p));
}

/** Full view for the result page: headline, column table and per-column charts. */
export function profileFull(p) {
  return h(
    'div',
    { class: 'profile' },
    headline(p),
    h('h2', null, 'Columns'),
    columnTable(p),
    h('h2', null, 'Distributions'),
    h(
      'div',
      { class: 'column-cards' },
      p.columns.map((c) =>
        h(
          'section',
          { class: 'card column-card', 'data-column': c.name },
          h('h3', null, c.name, ' ', h('span', { class: `type type-${c.type}` }, c.type)),
          Array.isArray(c.histogram) && c.histogram.length > 0 ? h('figure', null, histogramChart(c.histogram, `Histogram of ${c.name}`), h('figcaption', null, 'Histogram')) : null,
          Array.isArray(c.top) && c.top.length > 0 ? h('figure', null, topValuesChart(c.top, `Top values of ${c.name}`), h('figcaption', null, 'Top values')) : null,
          (!c.histogram || c.histogram.length === 0) && (!c.top || c.top.length === 0) ? h('p', { class: 'muted' }, 'No values.') : null,
        ),
      ),
    ),
  );
}
