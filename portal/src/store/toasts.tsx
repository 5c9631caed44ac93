import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from 'react';

export interface Toast {
  id: number;
  text: string;
  tone: 'error' | 'info';
}

interface ToastApi {
  push: (text: string, tone?: Toast['tone']) => void;
}

const ToastContext = createContext<ToastApi>({ push: () => undefined });
let nextId = 1;

/** Short-lived notices (refused commands, validation errors, rate limits). */
export function ToastProvider({ children, bind }: { children: ReactNode; bind?: (api: ToastApi) => void }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const push = useCallback((text: string, tone: Toast['tone'] = 'error') => {
    const id = nextId++;
    setToasts((prev) => [...prev.slice(-3), { id, text, tone }]);
    window.setTimeout(() => setToasts((prev) => prev.filter((t) => t.id !== id)), 6000);
  }, []);
  const api = useMemo(() => ({ push }), [push]);
  bind?.(api);
  return (
    <ToastContext.Provider value={api}>
      {children}
      <div className="toasts" aria-live="assertive">
        {toasts.map((t) => (
          <div key={t.id} className={`toast toast-${t.tone}`} role="alert">
            {t.text}
            <button type="button" aria-label="Dismiss" onClick={() => setToasts((p) => p.filter((x) => x.id !== t.id))}>
              ×
            </button>
          </div>
        ))}
      </div>
    </ToastContext.Provider>
  );
}

export const useToasts = (): ToastApi => useContext(ToastContext);
