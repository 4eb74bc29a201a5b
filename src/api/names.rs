//! The name endpoints: `GET /api/v1/names`, `PUT` and `DELETE
//! /api/v1/names/NAME` (aliases), and the URL a name is reached at.

use super::{Api, ApiError, json};
use crate::app::NameInfo;
use crate::http::{Reply, Request};
use crate::ports::names::parse_name;
use crate::ports::wire::{self, AliasBody, Body, NamesAnswer};
use crate::util::time::now_rfc3339;
use std::sync::Arc;

/// `http://NAME.D/` or `http://NAME.D:PORT/`: `D` the first routes domain,
/// `PORT` the routes port (left out when 80), else the API's TCP port.
pub fn name_url(api: &Api, name: &str) -> String {
    api.name_urls().url(name)
}

/// `GET /api/v1/names`: live and retained names, by name.
pub fn list(api: &Api) -> crate::http::Response {
    let urls = api.name_urls();
    let names = api.names().iter().map(|n| urls.view(n)).collect();
    json(
        200,
        &NamesAnswer {
            names,
            timestamp: now_rfc3339(),
        },
    )
}

/// The name of a path, lowercased, or 400 naming `name`.
fn path_name(raw: &str) -> Result<String, ApiError> {
    parse_name(raw).map_err(ApiError::BadRequest)
}

/// `PUT /api/v1/names/NAME {"port":N}`: an alias of the caller.
pub fn put(api: &Api, raw: &str, request: &Request) -> Result<Reply, ApiError> {
    let name = path_name(raw)?;
    let body: AliasBody = wire::parse(&request.body).map_err(ApiError::BadRequest)?;
    // An empty body is parsed as the default, unchecked: no port either.
    let port = match body.port {
        Some(port) => port,
        None => {
            return Err(ApiError::BadRequest(
                AliasBody::default().check().unwrap_err(),
            ));
        }
    };
    let who = super::principal(&request.peer);
    Ok(answer_later(api, |done| {
        api.set_alias(&name, port, who, done)
    }))
}

/// `DELETE /api/v1/names/NAME`: the caller's alias ends (and is retained),
/// or the caller's retained name is forgotten.
pub fn delete(api: &Api, raw: &str, request: &Request) -> Result<Reply, ApiError> {
    let name = path_name(raw)?;
    let who = super::principal(&request.peer);
    Ok(answer_later(api, |done| api.remove_name(&name, who, done)))
}

/// Starts a name change whose answer, the name as it is left, comes once
/// it is durable.
fn answer_later(api: &Api, start: impl FnOnce(crate::app::Done<NameInfo>)) -> Reply {
    let (later, completion) = crate::http::later();
    let (urls, metrics) = (api.name_urls(), Arc::clone(&api.metrics));
    start(Box::new(move |outcome| {
        completion.complete(match outcome {
            Ok(info) => json(200, &urls.view(&info)),
            Err(e) => {
                metrics.deny(e.denial());
                ApiError::from(e).into_response()
            }
        });
    }));
    Reply::Later(later)
}
