"""The stylesheet of the report page, shared with the demo's picture: layout, the colour of
each job and drive state, the marks."""

from __future__ import annotations

__all__ = ["CSS"]

CSS = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bad:#b91c1c;--good:#15803d}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--ink);background:#f8fafc}
main{max-width:1320px;margin:0 auto;padding:20px 28px 40px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:0 0 8px}
.sub{color:var(--muted);margin:0 0 12px}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-weight:600;color:#fff}
.ok{background:var(--good)}.bad{background:var(--bad)}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 16px;
margin:14px 0;break-inside:avoid}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(250px,1fr));gap:14px;
margin:14px 0}
.grid section{margin:0}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}td.n,th.n{text-align:right}
.violations{border-color:#fecaca;background:#fef2f2}.violations li,.red{color:var(--bad)}
.note{color:var(--muted);font-size:12.5px}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12.5px;margin:4px 0 8px}
.sw{display:inline-block;width:14px;height:10px;border-radius:2px;margin-right:4px;
vertical-align:-1px}
svg{display:block;width:100%;min-width:1180px;height:auto;font-size:11px}
section{overflow-x:auto}
svg text{fill:#374151}svg .axis{fill:var(--muted)}svg .gl{stroke:#eef0f3}
.s-Creating{fill:#cbd5e1;background:#cbd5e1}.s-Shipping{fill:#93c5fd;background:#93c5fd}
.s-Received{fill:#fcd34d;background:#fcd34d}.s-Transferring{fill:#06b6d4;background:#06b6d4}
.s-Packaging{fill:#c084fc;background:#c084fc}.s-Completed{fill:#86efac;background:#86efac}
.s-Closed{fill:#fca5a5;background:#fca5a5}.s-other{fill:#e5e7eb;background:#e5e7eb}
.d-Specified{fill:#e2e8f0;background:#e2e8f0}.d-Received{fill:#fbbf24;background:#fbbf24}
.d-NeverReceived{fill:#6b7280;background:#6b7280}
.d-Transferring{fill:#0891b2;background:#0891b2}.d-Completed{fill:#22c55e;background:#22c55e}
.d-CompletedMoreInfo{fill:#f97316;background:#f97316}
.d-ShippedBack{fill:#bbf7d0;background:#bbf7d0}.d-other{fill:#e5e7eb;background:#e5e7eb}
.mk-cancel{fill:#1e3a8a;stroke:#fff;background:#1e3a8a}
.mk-again{fill:#fff;stroke:#1e3a8a;stroke-width:1.5;background:#fff;border:1.5px solid #1e3a8a}
.mk-late{fill:#dc2626;stroke:#fff;background:#dc2626}
.mk-other{fill:#9ca3af;stroke:#fff;background:#9ca3af}
.mk-del{fill:#111827;background:#111827}.mk-skip{fill:#92400e;background:#92400e}
.fault{fill:#ef4444;fill-opacity:.12;background:#fee2e2}
.fault-line{stroke:#dc2626;stroke-dasharray:3 2}.fault-label{fill:#b91c1c;font-weight:600}
.area{fill-opacity:.18}.line{fill:none;stroke-width:1.6}
.peak{fill:none;stroke-width:1.2;stroke-opacity:.45}.cap{stroke-dasharray:5 3;fill:none}
@media print{body{background:#fff;font-size:11px}main{padding:0;max-width:none}
svg{min-width:0}section{overflow:visible}
section{border-color:#ccc}}
@page{size:A4 landscape;margin:10mm}
"""
