import { useEffect, useState, type FormEvent } from 'react';

import { useWebSocketEvent } from '@agent-portal/client/react';

import { time } from '../../lib/format';
import { flatten, merge, nest, same, type Flat, type Json } from '../../store/configTree';
import { useToasts } from '../../store/toasts';
import { errorMessage, useRequest } from '../../store/useRequest';

type ConfigType = 'agent' | 'system' | 'security';

const CHOICES: Record<string, string[]> = { orchestration_mode: ['blocking', 'partial', 'autonomous'] };
// Lists edited as space-separated words; empty means "none" (null) where the server allows it.
const NULLABLE_LISTS = new Set(['command', 'test_command']);

const leaf = (path: string): string => path.split('.').at(-1)!;
const labelOf = (path: string): string => leaf(path).replace(/_/g, ' ');

export function ConfigForm({ configType }: { configType: ConfigType }) {
  const request = useRequest();
  const { push } = useToasts();
  const [saved, setSaved] = useState<Record<string, Json> | null>(null);
  const [draft, setDraft] = useState<Flat>({});
  const [reason, setReason] = useState('');
  const [lastChange, setLastChange] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    request('/admin', 'get_config', { config_type: configType })
      .then(({ config }) => {
        setSaved(config);
        setDraft(flatten(config));
      })
      .catch((e) => push(errorMessage(e)));
  }, [request, configType, push]);

  // Someone (maybe this page) changed it: take their values, keep what this user is still editing.
  useWebSocketEvent('/admin', 'config_changed', (event) => {
    if (event.config_type !== configType || !saved) return;
    const before = flatten(saved);
    const next = merge(saved, event.changes as Record<string, Json>);
    const after = flatten(next);
    setSaved(next);
    setDraft((d) => Object.fromEntries(Object.entries(after).map(([k, v]) => [k, same(d[k] ?? null, before[k] ?? null) ? v : d[k]!])));
    setLastChange(`Changed by ${event.changed_by} at ${time(event.timestamp)}${event.reason ? `: ${event.reason}` : ''}`);
  });

  if (!saved) return <p className="muted">Loading…</p>;
  const base = flatten(saved);
  const dirty = Object.keys(draft).filter((k) => !same(draft[k] ?? null, base[k] ?? null));

  const submit = async (event: FormEvent): Promise<void> => {
    event.preventDefault();
    if (!dirty.length) return;
    setBusy(true);
    try {
      await request('/admin', 'update_config', {
        config_type: configType,
        changes: nest(Object.fromEntries(dirty.map((k) => [k, draft[k]!]))),
        ...(reason.trim() ? { reason: reason.trim() } : {}),
      });
      setReason('');
      push('Saved', 'info');
    } catch (e) {
      push(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  const groups = new Map<string, string[]>();
  for (const path of Object.keys(base)) {
    const group = path.includes('.') ? path.split('.')[0]! : '';
    groups.set(group, [...(groups.get(group) ?? []), path]);
  }

  return (
    <form className="config-form" onSubmit={submit} aria-label={`${configType} configuration`} data-config={configType}>
      {lastChange && (
        <p className="notice" role="status" data-testid="config-changed">
          {lastChange}
        </p>
      )}
      {[...groups.entries()].map(([group, paths]) => (
        <fieldset key={group || 'main'}>
          {group && <legend>{group}</legend>}
          {paths.map((path) => (
            <Field key={path} path={path} value={draft[path] ?? null} original={base[path] ?? null} onChange={(v) => setDraft((d) => ({ ...d, [path]: v }))} />
          ))}
        </fieldset>
      ))}
      <div className="form-actions">
        <label className="grow">
          <span>
            Reason <span className="muted small">(optional, goes to the audit log)</span>
          </span>
          <input value={reason} onChange={(e) => setReason(e.target.value)} maxLength={500} />
        </label>
        <button type="submit" className="primary" disabled={!dirty.length || busy}>
          Save {dirty.length ? `(${dirty.length})` : ''}
        </button>
        <button type="button" disabled={!dirty.length} onClick={() => setDraft(base)}>
          Reset
        </button>
      </div>
    </form>
  );
}

function Field({ path, value, original, onChange }: { path: string; value: Json; original: Json; onChange: (v: Json) => void }) {
  const name = leaf(path);
  const id = `cfg-${path.replace(/\./g, '-')}`;
  const changed = !same(value, original);
  let control;
  if (typeof original === 'boolean') {
    control = <input id={id} name={path} type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked)} />;
  } else if (typeof original === 'number') {
    control = (
      <input
        id={id}
        name={path}
        type="number"
        step={Number.isInteger(original) ? 1 : 'any'}
        value={typeof value === 'number' ? value : ''}
        onChange={(e) => onChange(e.target.value === '' ? original : Number(e.target.value))}
      />
    );
  } else if (CHOICES[name]) {
    control = (
      <select id={id} name={path} value={String(value)} onChange={(e) => onChange(e.target.value)}>
        {CHOICES[name]!.map((c) => (
          <option key={c}>{c}</option>
        ))}
      </select>
    );
  } else if (Array.isArray(original) || original === null) {
    const words = Array.isArray(value) ? value.join(' ') : '';
    control = (
      <input
        id={id}
        name={path}
        value={words}
        placeholder={NULLABLE_LISTS.has(name) ? 'none (default)' : 'space-separated'}
        onChange={(e) => {
          const list = e.target.value.split(/\s+/).filter(Boolean);
          onChange(list.length ? list : NULLABLE_LISTS.has(name) ? null : []);
        }}
      />
    );
  } else {
    control = <input id={id} name={path} value={String(value ?? '')} onChange={(e) => onChange(e.target.value)} />;
  }
  return (
    <div className={`field ${changed ? 'changed' : ''}`}>
      <label htmlFor={id}>{labelOf(path)}</label>
      {control}
    </div>
  );
}
