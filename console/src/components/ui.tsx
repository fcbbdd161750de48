import {
  type AnchorHTMLAttributes,
  type ButtonHTMLAttributes,
  type MouseEvent,
  type ReactNode,
  useEffect,
  useId,
  useRef,
} from 'react';
import { ApiError, CLIENT_CODES, type FieldIssue } from '../lib/api.js';
import { navigate } from '../lib/router.js';

/** A link that navigates without reloading (a plain `<a href>` for new tabs and modified clicks). */
export function Link({
  href,
  children,
  ...rest
}: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    rest.onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return (
    <a {...rest} href={href} onClick={onClick}>
      {children}
    </a>
  );
}

type Variant = 'primary' | 'danger' | 'secondary' | 'ghost';

/** A button; `disabledReason` disables it and says why (as its title and to screen readers). */
export function Button({
  variant = 'secondary',
  disabledReason,
  className,
  children,
  ...rest
}: ButtonHTMLAttributes<HTMLButtonElement> & { variant?: Variant; disabledReason?: string | undefined }) {
  const disabled = rest.disabled || disabledReason !== undefined;
  return (
    <button
      type="button"
      {...rest}
      disabled={disabled}
      title={disabledReason ?? rest.title}
      className={`btn btn-${variant}${className ? ` ${className}` : ''}`}
    >
      {children}
    </button>
  );
}

/** A modal dialog on the native `<dialog>` (focus trap, Escape and inert background come with it). */
export function Dialog({
  open,
  title,
  onClose,
  children,
  wide,
}: {
  open: boolean;
  title: string;
  onClose: () => void;
  children: ReactNode;
  wide?: boolean;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog
      ref={ref}
      className={wide ? 'dialog dialog-wide' : 'dialog'}
      aria-labelledby={titleId}
      onClose={onClose}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      {open && (
        <>
          <header className="dialog-head">
            <h2 id={titleId}>{title}</h2>
            <button type="button" className="btn btn-ghost" aria-label="Close" onClick={onClose}>
              ×
            </button>
          </header>
          <div className="dialog-body">{children}</div>
        </>
      )}
    </dialog>
  );
}

/** A labelled form field with its hint and the server's issues about it. */
export function Field({
  label,
  hint,
  issues = [],
  children,
  className,
}: {
  label: string;
  hint?: ReactNode;
  issues?: readonly FieldIssue[];
  children: (props: { id: string; 'aria-describedby'?: string; 'aria-invalid'?: boolean }) => ReactNode;
  className?: string;
}) {
  const id = useId();
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [hint ? hintId : '', issues.length ? errorId : ''].filter(Boolean).join(' ');
  return (
    <div className={`field${issues.length ? ' field-invalid' : ''}${className ? ` ${className}` : ''}`}>
      <label htmlFor={id}>{label}</label>
      {children({
        id,
        ...(describedBy ? { 'aria-describedby': describedBy } : {}),
        ...(issues.length ? { 'aria-invalid': true } : {}),
      })}
      {hint && (
        <p className="hint" id={hintId}>
          {hint}
        </p>
      )}
      {issues.length > 0 && (
        <ul className="field-error" id={errorId} data-testid="field-error">
          {issues.map((i) => (
            <li key={i.field + i.message}>{i.message}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** An error as a banner: unreachable server, expired session, or the server's message and code. */
export function ErrorBanner({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (!error) return null;
  const e = error instanceof ApiError ? error : undefined;
  const title =
    e?.code === CLIENT_CODES.unreachable
      ? 'The flag server cannot be reached'
      : e?.status === 403
        ? 'Not allowed'
        : e?.status === 404
          ? 'Not found'
          : 'Something went wrong';
  return (
    <div className="banner banner-error" role="alert">
      <strong>{title}.</strong> <span>{error instanceof Error ? error.message : String(error)}</span>
      {e && e.code !== CLIENT_CODES.unreachable && <code className="code">{e.code}</code>}
      {onRetry && (
        <Button variant="ghost" onClick={onRetry}>
          Retry
        </Button>
      )}
    </div>
  );
}

/** An empty list, with what to do about it. */
export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty" data-testid="empty">
      <p className="empty-title">{title}</p>
      {children}
    </div>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p className="loading" role="status">
      {label}
    </p>
  );
}

/** A coloured badge for a flag state, incident status or severity. */
export function Badge({ tone, children }: { tone: string; children: ReactNode }) {
  return <span className={`badge badge-${tone}`}>{children}</span>;
}

/** Tabs as links (each tab is a page with its own URL). */
export function TabLinks({
  tabs,
  current,
}: {
  tabs: { href: string; label: string; id: string }[];
  current: string;
}) {
  return (
    <nav className="tabs" aria-label="Flag views">
      {tabs.map((t) => (
        <Link key={t.id} href={t.href} className="tab" aria-current={t.id === current ? 'page' : undefined}>
          {t.label}
        </Link>
      ))}
    </nav>
  );
}
