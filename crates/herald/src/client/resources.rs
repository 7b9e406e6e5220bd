//! `send` and the resource commands: `app`, `endpoint`, `message`, `event-type` and
//! `inbox list` (`list | get | create | delete`), printing aligned tables or, with `--json`,
//! the server's JSON.

use std::io::Read as _;

use reqwest::Method;
use serde_json::{Value, json};

use super::table::{render_list, render_object};
use super::{Api, ClientError, ClientResult, segment};
use crate::cli::{
    AppCommand, EndpointCommand, EventTypeCommand, InboxCommand, MessageCommand, PageArgs,
    SendArgs, ServerArgs,
};

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

/// Prints one resource: its JSON, or its fields.
fn show(server: &ServerArgs, value: &Value) {
    if server.json {
        print_json(value);
    } else {
        print!("{}", render_object(value));
    }
}

fn page_query(page: &PageArgs) -> ClientResult<String> {
    if !(1..=250).contains(&page.limit) {
        return Err(ClientError::Usage("--limit goes from 1 to 250".into()));
    }
    let mut query = format!("?limit={}", page.limit);
    if let Some(iterator) = &page.iterator {
        query.push_str(&format!("&iterator={}", segment(iterator)));
    }
    Ok(query)
}

/// Lists one page as a table (or JSON), saying how to get the next one.
async fn list(
    server: &ServerArgs,
    page: &PageArgs,
    path: &str,
    columns: &[(&str, &str)],
) -> ClientResult {
    let api = Api::new(server)?;
    let answer = api
        .call(Method::GET, &format!("{path}{}", page_query(page)?), None)
        .await?;
    if server.json {
        print_json(&answer);
        return Ok(());
    }
    print!("{}", render_list(&answer, columns));
    if answer["done"] == false
        && let Some(next) = answer["iterator"].as_str()
    {
        eprintln!("(more: --iterator {next})");
    }
    Ok(())
}

async fn get(server: &ServerArgs, path: &str) -> ClientResult {
    let answer = Api::new(server)?.call(Method::GET, path, None).await?;
    show(server, &answer);
    Ok(())
}

async fn create(server: &ServerArgs, path: &str, body: &Value) -> ClientResult {
    let answer = Api::new(server)?
        .call(Method::POST, path, Some(body))
        .await?;
    show(server, &answer);
    Ok(())
}

async fn delete(server: &ServerArgs, path: &str, what: &str) -> ClientResult {
    Api::new(server)?.call(Method::DELETE, path, None).await?;
    if server.json {
        print_json(&json!({"deleted": what}));
    } else {
        println!("deleted {what}");
    }
    Ok(())
}

/// The `--data` of `send`: JSON, `@file` or `@-` (stdin). It must be an object.
fn read_data(data: &str) -> ClientResult<Value> {
    let text = match data.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| ClientError::Usage(format!("cannot read --data from stdin: {e}")))?;
            text
        }
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| ClientError::Usage(format!("cannot read --data file {path}: {e}")))?,
        None => data.to_owned(),
    };
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| ClientError::Usage(format!("--data is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ClientError::Usage("--data must be a JSON object".into()));
    }
    Ok(value)
}

/// `herald send` (and `message create`): publishes and prints the message id.
pub async fn send(args: &SendArgs) -> ClientResult {
    let payload = read_data(&args.data)?;
    let api = Api::new(&args.server)?;
    let mut body = json!({"eventType": args.event_type, "payload": payload});
    if let Some(event_id) = &args.event_id {
        body["eventId"] = json!(event_id);
    }
    if !args.channels.is_empty() {
        body["channels"] = json!(args.channels);
    }
    let answer = api
        .call(
            Method::POST,
            &format!("/api/v1/app/{}/msg", segment(&args.app)),
            Some(&body),
        )
        .await?;
    if args.server.json {
        print_json(&answer);
    } else {
        println!("{}", answer["id"].as_str().unwrap_or_default());
    }
    Ok(())
}

pub async fn app(command: AppCommand) -> ClientResult {
    match command {
        AppCommand::List { server, page } => {
            list(
                &server,
                &page,
                "/api/v1/app",
                &[
                    ("ID", "id"),
                    ("UID", "uid"),
                    ("NAME", "name"),
                    ("CREATED", "createdAt"),
                ],
            )
            .await
        }
        AppCommand::Get { server, app } => {
            get(&server, &format!("/api/v1/app/{}", segment(&app))).await
        }
        AppCommand::Create { server, name, uid } => {
            let mut body = json!({"name": name});
            if let Some(uid) = uid {
                body["uid"] = json!(uid);
            }
            create(&server, "/api/v1/app", &body).await
        }
        AppCommand::Delete { server, app } => {
            delete(&server, &format!("/api/v1/app/{}", segment(&app)), &app).await
        }
    }
}

pub async fn endpoint(command: EndpointCommand) -> ClientResult {
    let base = |app: &str| format!("/api/v1/app/{}/endpoint", segment(app));
    match command {
        EndpointCommand::List { server, page, app } => {
            list(
                &server,
                &page,
                &base(&app),
                &[
                    ("ID", "id"),
                    ("URL", "url"),
                    ("EVENT TYPES", "eventTypes"),
                    ("DISABLED", "disabled"),
                ],
            )
            .await
        }
        EndpointCommand::Get {
            server,
            app,
            endpoint,
        } => get(&server, &format!("{}/{}", base(&app), segment(&endpoint))).await,
        EndpointCommand::Create {
            server,
            app,
            url,
            event_types,
            description,
            uid,
        } => {
            let mut body = json!({"url": url});
            if !event_types.is_empty() {
                body["eventTypes"] = json!(event_types);
            }
            if let Some(description) = description {
                body["description"] = json!(description);
            }
            if let Some(uid) = uid {
                body["uid"] = json!(uid);
            }
            create(&server, &base(&app), &body).await
        }
        EndpointCommand::Delete {
            server,
            app,
            endpoint,
        } => {
            delete(
                &server,
                &format!("{}/{}", base(&app), segment(&endpoint)),
                &endpoint,
            )
            .await
        }
    }
}

pub async fn message(command: MessageCommand) -> ClientResult {
    match command {
        MessageCommand::List { server, page, app } => {
            list(
                &server,
                &page,
                &format!("/api/v1/app/{}/msg", segment(&app)),
                &[
                    ("ID", "id"),
                    ("EVENT TYPE", "eventType"),
                    ("EVENT ID", "eventId"),
                    ("CREATED", "timestamp"),
                ],
            )
            .await
        }
        MessageCommand::Get {
            server,
            app,
            message,
        } => {
            get(
                &server,
                &format!("/api/v1/app/{}/msg/{}", segment(&app), segment(&message)),
            )
            .await
        }
        MessageCommand::Create(args) => send(&args).await,
    }
}

pub async fn event_type(command: EventTypeCommand) -> ClientResult {
    match command {
        EventTypeCommand::List { server, page } => {
            list(
                &server,
                &page,
                "/api/v1/event-type",
                &[
                    ("NAME", "name"),
                    ("DESCRIPTION", "description"),
                    ("ARCHIVED", "archived"),
                ],
            )
            .await
        }
        EventTypeCommand::Get { server, name } => {
            get(&server, &format!("/api/v1/event-type/{}", segment(&name))).await
        }
        EventTypeCommand::Create {
            server,
            name,
            description,
        } => {
            create(
                &server,
                "/api/v1/event-type",
                &json!({"name": name, "description": description}),
            )
            .await
        }
        EventTypeCommand::Delete {
            server,
            name,
            expunge,
        } => {
            let query = if expunge { "?expunge=true" } else { "" };
            delete(
                &server,
                &format!("/api/v1/event-type/{}{query}", segment(&name)),
                &name,
            )
            .await
        }
    }
}

pub async fn inbox(command: InboxCommand) -> ClientResult {
    match command {
        InboxCommand::List { server, page } => {
            list(
                &server,
                &page,
                "/api/v1/inbox",
                &[
                    ("ID", "id"),
                    ("NAME", "name"),
                    ("APP", "appId"),
                    ("INGEST URL", "ingestUrl"),
                ],
            )
            .await
        }
        InboxCommand::Export {
            server,
            inbox,
            format,
            out,
            path,
        } => super::export::run(&server, &inbox, format, out.as_deref(), path.as_deref()).await,
    }
}
