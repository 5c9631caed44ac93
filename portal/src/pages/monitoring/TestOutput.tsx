import { useLayoutEffect, useRef, useState } from 'react';

import { DemoBadge } from '../../components/DemoBadge';
import { Panel } from '../../components/Panel';
import { shortDuration, stripDemo } from '../../lib/format';
import type { CycleView } from '../../store/monitoringReducer';
import { PhaseTrack } from './CycleList';

/** Live test output of one cycle; follows the stream unless the reader scrolled up. */
export function TestOutput({ cycle }: { cycle?: CycleView }) {
  const box = useRef<HTMLPreElement>(null);
  const [follow, setFollow] = useState(true);

  useLayoutEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [cycle?.lines.length, follow, cycle?.cycle_id]);

  const onScroll = (): void => {
    const el = box.current;
    if (el) setFollow(el.scrollHeight - el.scrollTop - el.clientHeight < 30);
  };

  if (!cycle) {
    return (
      <Panel title="Test output" id="output" className="output">
        <p className="muted">Pick a cycle to see its output.</p>
      </Panel>
    );
  }
  const passed = cycle.results.filter((r) => r.status === 'green').length;
  const failed = cycle.results.filter((r) => r.status === 'red' || r.status === 'error').length;
  const demo = cycle.lines.some((l) => l.text.includes('[demo]'));

  return (
    <Panel
      title={
        <>
          Test output <span className="mono small">{cycle.story_id}</span> <DemoBadge force={demo} />
        </>
      }
      id="output"
      className="output"
      actions={
        <label className="follow small">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow
        </label>
      }
    >
      <PhaseTrack state={cycle.state} />
      <dl className="results" data-testid="test-results">
        <div>
          <dt>Passed</dt>
          <dd className="ok">{passed}</dd>
        </div>
        <div>
          <dt>Failed</dt>
          <dd className={failed ? 'bad' : ''}>{failed}</dd>
        </div>
        <div>
          <dt>Coverage</dt>
          <dd>{cycle.metrics ? `${cycle.metrics.coverage.toFixed(1)}%` : '—'}</dd>
        </div>
        <div>
          <dt>Phase times</dt>
          <dd>{cycle.phases.filter((p) => p.duration).map((p) => shortDuration(p.duration!)).join(' · ') || '—'}</dd>
        </div>
      </dl>
      <pre className="terminal" ref={box} onScroll={onScroll} tabIndex={0} aria-label="Test output" aria-live="off" data-testid="test-output">
        {cycle.lines.map((l, i) => (
          <span key={i} className={`line line-${l.type} ${/FAILED|failed|red /.test(l.text) ? 'line-bad' : /PASSED|passed|green /.test(l.text) ? 'line-ok' : ''}`}>
            {stripDemo(l.text)}
            {'\n'}
          </span>
        ))}
      </pre>
      {!follow && (
        <button type="button" className="link-button" onClick={() => setFollow(true)}>
          Jump to the end
        </button>
      )}
    </Panel>
  );
}
