//! Query strings, parsed by hand so each bad parameter gets a `422` that names it.

use std::collections::HashMap;

use actix_web::HttpRequest;
use domain::pagination::PageRequest;

use crate::cursor;
use crate::error::ApiError;

pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses the query string. `allowed` lists the parameters the route takes; any other one is
    /// refused, so a typo (`limt=5`) is reported instead of silently ignored.
    pub fn parse(request: &HttpRequest, allowed: &[&str]) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(request.query_string())
            .map_err(|_| ApiError::invalid("query", "is not a valid query string"))?;
        let mut params = HashMap::new();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::invalid(&name, "is not a parameter of this route"));
            }
            if params.insert(name.clone(), value).is_some() {
                return Err(ApiError::invalid(&name, "must be given at most once"));
            }
        }
        Ok(Self(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `limit` (default `default`, 1..=`max`) and `cursor` of a listing (API.md §1.5).
    pub fn page(
        &self,
        list: &'static str,
        default: usize,
        max: usize,
    ) -> Result<PageRequest, ApiError> {
        let limit = match self.get("limit") {
            None => default,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|limit| (1..=max).contains(limit))
                .ok_or_else(|| {
                    ApiError::invalid("limit", &format!("must be an integer from 1 to {max}"))
                })?,
        };
        let after = self
            .get("cursor")
            .map(|raw| cursor::decode(list, raw))
            .transpose()?;
        Ok(PageRequest { after, limit })
    }
}
