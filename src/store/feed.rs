//! The incident feed: one incident with its deliveries, evidence, case reports and review, and
//! filtered pages of incidents, newest first, with their count.

use uuid::Uuid;

use super::*;

/// Filter and page of an incident listing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IncidentQuery {
    /// Only this camera.
    pub camera: Option<String>,
    /// Only this zone.
    pub zone: Option<String>,
    /// Only this state (`open`, `cleared`).
    pub state: Option<String>,
    /// Only incidents with an event in this delivery state (`pending`, `delivered`, `dead`,
    /// `cancelled`).
    pub delivery: Option<String>,
    /// Only incidents with this review.
    pub review: Option<ReviewFilter>,
    /// Raised at or after (unix seconds).
    pub since: Option<f64>,
    /// Raised before (unix seconds).
    pub until: Option<f64>,
    /// At most this many.
    pub limit: u32,
    /// Skip this many (newest first).
    pub offset: u32,
}

impl Store {
    /// One incident with its deliveries, evidence and case reports.
    pub fn incident(&self, id: Uuid) -> Result<Option<IncidentRow>, StoreError> {
        let rows = self.query_incidents(
            "WHERE id = ?1",
            &[&id.to_string() as &dyn rusqlite::ToSql],
            1,
            0,
        )?;
        Ok(rows.into_iter().next())
    }

    /// Incidents matching `q`, newest first.
    pub fn incidents(&self, q: &IncidentQuery) -> Result<Vec<IncidentRow>, StoreError> {
        let (filter, args) = Self::incident_filter(q);
        let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
        self.query_incidents(&filter, &refs, q.limit, q.offset)
    }

    /// How many incidents `q` finds over all its pages.
    pub fn count_incidents(&self, q: &IncidentQuery) -> Result<u64, StoreError> {
        let (filter, args) = Self::incident_filter(q);
        let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
        self.conn
            .query_row(
                &format!("SELECT COUNT(*) FROM incidents {filter}"),
                refs.as_slice(),
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(self.err())
    }

    /// The `WHERE` clause of `q` (empty when it filters nothing) and its arguments.
    fn incident_filter(q: &IncidentQuery) -> (String, Vec<Box<dyn rusqlite::ToSql>>) {
        let mut clauses = Vec::new();
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if let Some(c) = &q.camera {
            args.push(Box::new(c.clone()));
            clauses.push(format!("camera_id = ?{}", args.len()));
        }
        if let Some(z) = &q.zone {
            args.push(Box::new(z.clone()));
            clauses.push(format!("zone = ?{}", args.len()));
        }
        if let Some(s) = &q.state {
            args.push(Box::new(s.clone()));
            clauses.push(format!("state = ?{}", args.len()));
        }
        if let Some(d) = &q.delivery {
            args.push(Box::new(d.clone()));
            clauses.push(format!(
                "EXISTS (SELECT 1 FROM outbox o WHERE o.incident_id = incidents.id AND o.state = ?{})",
                args.len()
            ));
        }
        match q.review {
            None => {}
            Some(ReviewFilter::Unreviewed) => clauses.push("review IS NULL".to_owned()),
            Some(ReviewFilter::Is(v)) => {
                args.push(Box::new(v.as_str()));
                clauses.push(format!("review = ?{}", args.len()));
            }
        }
        if let Some(t) = q.since {
            args.push(Box::new(t));
            clauses.push(format!("raised_at >= ?{}", args.len()));
        }
        if let Some(t) = q.until {
            args.push(Box::new(t));
            clauses.push(format!("raised_at < ?{}", args.len()));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        (filter, args)
    }

    fn query_incidents(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
        limit: u32,
        offset: u32,
    ) -> Result<Vec<IncidentRow>, StoreError> {
        let sql = format!(
            "SELECT id, camera_id, zone, state, category_code, appeared_at, raised_at, updated_at,
                 cleared_at, dwell_s, confidence, objects, actor, review, reviewed_at, reviewed_by,
                 review_note, review_reason
             FROM incidents {filter} ORDER BY raised_at DESC, id DESC LIMIT {limit} OFFSET {offset}"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(self.err())?;
        let raw = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    IncidentRow {
                        id: Uuid::nil(),
                        camera_id: r.get(1)?,
                        zone: r.get(2)?,
                        state: r.get(3)?,
                        category_code: r.get(4)?,
                        appeared_at: r.get(5)?,
                        raised_at: r.get(6)?,
                        updated_at: r.get(7)?,
                        cleared_at: r.get(8)?,
                        dwell_s: r.get(9)?,
                        confidence: r.get(10)?,
                        objects: serde_json::Value::Null,
                        actor: None,
                        deliveries: vec![],
                        evidence: vec![],
                        case_reports: vec![],
                        review: match r
                            .get::<_, Option<String>>(13)?
                            .as_deref()
                            .map(Verdict::parse)
                        {
                            Some(Some(verdict)) => Some(Review {
                                verdict,
                                at: r.get(14)?,
                                by: r.get(15)?,
                                reason: r
                                    .get::<_, Option<String>>(17)?
                                    .as_deref()
                                    .and_then(ReviewReason::parse),
                                note: r.get(16)?,
                            }),
                            _ => None,
                        },
                    },
                    r.get::<_, String>(11)?,
                    r.get::<_, Option<String>>(12)?,
                ))
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        let json = |what: &str, text: &str| {
            serde_json::from_str(text).map_err(|source| StoreError::Json {
                what: what.to_owned(),
                source,
            })
        };
        // A page's deliveries, evidence and case reports: one query each, not three per row.
        let ids: Vec<String> = raw.iter().map(|(id, ..)| id.clone()).collect();
        let mut deliveries = self.deliveries_of(&ids)?;
        let mut evidence = self.evidence_of(&ids)?;
        let mut case_reports = self.case_reports_of(&ids)?;
        let mut out = Vec::with_capacity(raw.len());
        for (id, mut row, objects, actor) in raw {
            row.id = id.parse().map_err(|_| StoreError::Json {
                what: format!("incident id {id:?}"),
                source: serde::de::Error::custom("not a UUID"),
            })?;
            row.objects = json(&format!("objects of incident {id}"), &objects)?;
            row.actor = actor
                .map(|a| json(&format!("actor of incident {id}"), &a))
                .transpose()?;
            row.deliveries = deliveries.remove(&id).unwrap_or_default();
            row.evidence = evidence.remove(&id).unwrap_or_default();
            row.case_reports = case_reports.remove(&id).unwrap_or_default();
            out.push(row);
        }
        Ok(out)
    }
}
