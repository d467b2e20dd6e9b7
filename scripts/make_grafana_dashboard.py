#!/usr/bin/env python3
# Writes config/grafana/dumpwatch.json (the Grafana dashboard): python3 scripts/make_grafana_dashboard.py > config/grafana/dumpwatch.json
# Panels are listed here once; tests/monitoring.rs checks that every metric they name exists.
import json
ds = {"type": "prometheus", "uid": "${datasource}"}
panels = []
y = 0
def panel(title, kind, targets, x, w, h=8, unit=None, extra=None, desc=""):
    p = {"title": title, "type": kind, "datasource": ds, "description": desc,
         "gridPos": {"x": x, "y": y, "w": w, "h": h},
         "targets": [dict(refId=chr(65+i), datasource=ds, **t) for i, t in enumerate(targets)],
         "fieldConfig": {"defaults": {}, "overrides": []}, "options": {}}
    if unit: p["fieldConfig"]["defaults"]["unit"] = unit
    if extra: p.update(extra)
    panels.append(p)
sel = 'instance=~"$instance"'
def q(name, quant):
    return f'histogram_quantile({quant}, sum by (le) (rate({name}_bucket{{{sel}}}[$__rate_interval])))'
panel("Cameras streaming", "stat", [{"expr": f'sum(dumpwatch_camera_up{{{sel}}})', "legendFormat": "up"},
      {"expr": f'count(dumpwatch_camera_up{{{sel}}})', "legendFormat": "configured"}], 0, 6, 4,
      desc="Cameras with a stream now, of those configured.")
panel("Cameras active", "stat", [{"expr": f'sum(dumpwatch_camera_active{{{sel}}})', "legendFormat": "active"}], 6, 6, 4,
      desc="Cameras decoded at full rate (someone near a zone or an object pending).")
panel("Open outbox", "stat", [{"expr": f'sum(dumpwatch_outbox_pending{{{sel}}})', "legendFormat": "pending"},
      {"expr": f'sum(dumpwatch_outbox_dead{{{sel}}})', "legendFormat": "dead"}], 12, 6, 4,
      desc="Incident events waiting for delivery, and refused ones (dead letter).")
panel("Incidents (24 h)", "stat", [{"expr": f'sum by (event) (increase(dumpwatch_incidents_total{{{sel}}}[24h]))', "legendFormat": "{{event}}"}], 18, 6, 4)
y = 4
panel("Inference latency p50 / p95", "timeseries", [
    {"expr": q("dumpwatch_inference_seconds", 0.5), "legendFormat": "p50"},
    {"expr": q("dumpwatch_inference_seconds", 0.95), "legendFormat": "p95"}], 0, 12, unit="s",
    desc="session.run of the detector: the hot path.")
panel("Inference latency heatmap", "heatmap", [
    {"expr": f'sum by (le) (increase(dumpwatch_inference_seconds_bucket{{{sel}}}[$__rate_interval]))', "legendFormat": "{{le}}", "format": "heatmap"}],
    12, 12, extra={"options": {"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1, "color": {"scheme": "Oranges", "mode": "scheme"}}})
y = 12
panel("Frame age p50 / p95", "timeseries", [
    {"expr": q("dumpwatch_frame_age_seconds", 0.5), "legendFormat": "p50"},
    {"expr": q("dumpwatch_frame_age_seconds", 0.95), "legendFormat": "p95"}], 0, 12, unit="s",
    desc="From a frame's arrival to its detections being ready.")
panel("Pipeline stages p95", "timeseries", [
    {"expr": q("dumpwatch_decode_seconds", 0.95), "legendFormat": "decode"},
    {"expr": q("dumpwatch_preprocess_seconds", 0.95), "legendFormat": "preprocess"},
    {"expr": q("dumpwatch_postprocess_seconds", 0.95), "legendFormat": "postprocess"}], 12, 12, unit="s")
y = 20
panel("Frames by stage", "timeseries", [
    {"expr": f'sum by (stage) (rate(dumpwatch_frames_total{{{sel}}}[$__rate_interval]))', "legendFormat": "{{stage}}"}], 0, 12, unit="fps")
panel("Drops by reason", "timeseries", [
    {"expr": f'sum by (reason) (rate(dumpwatch_frames_dropped_total{{{sel}}}[$__rate_interval]))', "legendFormat": "{{reason}}"}], 12, 12, unit="fps",
    desc="before_keyframe is planned; decode_busy, decode_error, superseded and background_busy mean a stage is behind.")
y = 28
panel("Cameras down", "table", [
    {"expr": f'dumpwatch_camera_up{{{sel}}} == 0', "legendFormat": "{{camera}}", "instant": True, "format": "table"}], 0, 8,
    extra={"transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True, "__name__": True, "job": True}}}]})
panel("Reconnects", "timeseries", [
    {"expr": f'sum by (camera) (increase(dumpwatch_camera_reconnects_total{{{sel}}}[$__rate_interval])) > 0', "legendFormat": "{{camera}}"}], 8, 8)
panel("Incidents", "timeseries", [
    {"expr": f'sum by (event) (increase(dumpwatch_incidents_total{{{sel}}}[$__rate_interval]))', "legendFormat": "{{event}}"}], 16, 8,
    extra={"fieldConfig": {"defaults": {"custom": {"drawStyle": "bars"}}, "overrides": []}})
y = 36
panel("Delivery attempts by result", "timeseries", [
    {"expr": f'sum by (result) (rate(dumpwatch_delivery_attempts_total{{{sel}}}[$__rate_interval]))', "legendFormat": "{{result}}"}], 0, 8, unit="reqps")
panel("Delivery latency (raised → acknowledged)", "timeseries", [
    {"expr": q("dumpwatch_delivery_latency_seconds", 0.5), "legendFormat": "p50"},
    {"expr": q("dumpwatch_delivery_latency_seconds", 0.95), "legendFormat": "p95"}], 8, 8, unit="s")
panel("Outbox", "timeseries", [
    {"expr": f'sum(dumpwatch_outbox_pending{{{sel}}})', "legendFormat": "pending"},
    {"expr": f'sum(dumpwatch_outbox_dead{{{sel}}})', "legendFormat": "dead"},
    {"expr": f'sum(increase(dumpwatch_evidence_errors_total{{{sel}}}[$__rate_interval]))', "legendFormat": "evidence errors"}], 16, 8)
for i, p in enumerate(panels):
    p["id"] = i + 1
dash = {
  "title": "dumpwatch", "uid": "dumpwatch", "schemaVersion": 39, "version": 1, "editable": True,
  "tags": ["dumpwatch"], "timezone": "browser", "refresh": "30s",
  "time": {"from": "now-6h", "to": "now"},
  "description": "Illegal-dumping watch: cameras, the inference hot path, incidents and their delivery.",
  "templating": {"list": [
    {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
    {"name": "instance", "type": "query", "datasource": ds, "label": "Instance",
     "query": {"query": "label_values(dumpwatch_camera_up, instance)", "refId": "instance"},
     "definition": "label_values(dumpwatch_camera_up, instance)",
     "includeAll": True, "multi": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"}, "refresh": 2}]},
  "annotations": {"list": []},
  "panels": panels,
}
print(json.dumps(dash, indent=2, ensure_ascii=False))
