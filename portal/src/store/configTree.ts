// Config documents as flat `a.b` paths for forms, and back into the nested `changes` update_config takes.
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Flat = Record<string, Json>;

export function flatten(doc: Record<string, Json>, prefix = ''): Flat {
  const out: Flat = {};
  for (const [key, value] of Object.entries(doc)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) Object.assign(out, flatten(value, path));
    else out[path] = value;
  }
  return out;
}

export function nest(flat: Flat): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const [path, value] of Object.entries(flat)) {
    const keys = path.split('.');
    let node = out;
    keys.slice(0, -1).forEach((k) => {
      node = (node[k] ??= {}) as Record<string, Json>;
    });
    node[keys.at(-1)!] = value;
  }
  return out;
}

export function merge(base: Record<string, Json>, changes: Record<string, Json>): Record<string, Json> {
  const out = { ...base };
  for (const [key, value] of Object.entries(changes)) {
    const prev = out[key];
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && prev && typeof prev === 'object' && !Array.isArray(prev)
        ? merge(prev, value)
        : value;
  }
  return out;
}

export const same = (a: Json, b: Json): boolean => JSON.stringify(a) === JSON.stringify(b);
