//! The macro that turns the table of `herald serve`'s options (in `settings.rs`) into the
//! settings struct clap and serde fill, the typed struct those settings resolve into, its
//! defaults and its resolver. An option is declared once, as one entry:
//!
//! ```text
//! /// Help text (the doc comment, as for any clap field).
//! name: Type = default_expression, "default as --help shows it" => kind, "VALUE_NAME" [extra clap args];
//! ```
//!
//! The `--help` text gets ` [default: …]` from the display string (the unit test
//! `help_defaults_are_the_defaults` checks that it parses to the default), and the resolver
//! names the option by `stringify!(name)`, the key of its flag, environment variable and
//! `herald.toml` entry. The kinds, and what the value is parsed with:
//!
//! - `duration(MIN, MAX)` or `duration(MIN, MAX, "BOUNDS")`: a [`Duration`](std::time::Duration)
//!   such as `30s` within the bounds, which the error message shows as `BOUNDS` when given;
//! - `whole(MIN, MAX)`: a whole number within the bounds, any integer type; a TOML integer;
//! - `decimal(MIN, MAX)`: an `f64` within the bounds, decimals allowed; a TOML integer or float;
//! - `bool`: `true`/`false` (also `1`/`0`, `yes`/`no`); a TOML boolean;
//! - `text(PARSER)`: `PARSER(&str) -> Result<Type, String>`;
//! - `custom(PARSER)`: as `text`, with the resolved storage settings as second argument;
//! - `list(PARSER)`: a `Vec<Type>`, repeatable flag, comma-separated environment variable,
//!   TOML array; each item parsed by `PARSER`;
//! - `secret`: an optional token of at least 16 characters whose value error messages never
//!   repeat.

/// See the module documentation.
macro_rules! serve_options {
    (
        $(
            $(#[doc = $doc:literal])*
            $name:ident: $ty:ty = $default:expr $(, $shown:literal)?
                => $kind:ident $(($($args:tt)*))?, $value_name:literal $([$($extra:tt)*])?;
        )*
    ) => {
        serve_options!(@settings []
            $({
                $name,
                [
                    $(#[doc = $doc])*
                    #[arg(
                        long,
                        value_name = $value_name,
                        help = settings_help(&[$($doc),*], [$($shown)?].first().copied()),
                    )]
                    $(#[arg($($extra)*)])?
                ],
                $kind
            })*
        );

        /// The options of `herald serve`, parsed and validated, in declaration order.
        pub struct ServeOptions {
            $(
                $(#[doc = $doc])*
                pub $name: $ty,
            )*
        }

        impl Default for ServeOptions {
            /// The built-in defaults, those `--help` shows.
            fn default() -> Self {
                Self {
                    $($name: $default,)*
                }
            }
        }

        impl ServeOptions {
            /// Each option from its highest layer, else its default. The options are resolved
            /// in declaration order, so of several bad values the first declared is reported.
            pub(in crate::config) fn resolve(
                resolver: &crate::config::Resolver,
                storage: &crate::config::StorageConfig,
            ) -> Result<Self, crate::config::ConfigError> {
                // Only `custom` options look at the storage settings.
                let _ = storage;
                Ok(Self {
                    $(
                        $name: serve_options!(
                            @resolve resolver, storage, stringify!($name), $default,
                            $kind $(($($args)*))?
                        )?,
                    )*
                })
            }
        }

        #[cfg(test)]
        mod declared_defaults {
            use super::*;

            /// The `[default: …]` of `--help` is the value the option gets when it is not set.
            #[test]
            fn help_defaults_are_the_defaults() {
                $(
                    serve_options!(
                        @check stringify!($name), $ty, $default, [$($shown)?],
                        $kind $(($($args)*))?
                    );
                )*
            }
        }
    };

    // The settings struct: one `Option<String>` (a list: `Vec<String>`) per option, and how
    // `herald.toml` gives it (numbers and booleans are TOML values there).
    (@settings [$($done:tt)*]) => {
        /// The options of `herald serve`. In `herald.toml` numbers and booleans are TOML values
        /// (`deserialize_with`), on the command line and in the environment text. The order of
        /// the fields is the order of `--help`, and of the keys listed when `herald.toml` has an
        /// unknown one.
        #[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
        pub struct ServeSettings {
            #[command(flatten)]
            #[serde(flatten)]
            pub storage: StorageSettings,
            $($done)*
        }
    };
    (@settings [$($done:tt)*] {$name:ident, [$($attr:tt)*], whole} $($rest:tt)*) => {
        serve_options!(@settings [
            $($done)*
            $($attr)*
            #[serde(default, deserialize_with = "whole_number")]
            pub $name: Option<String>,
        ] $($rest)*);
    };
    (@settings [$($done:tt)*] {$name:ident, [$($attr:tt)*], decimal} $($rest:tt)*) => {
        serve_options!(@settings [
            $($done)*
            $($attr)*
            #[serde(default, deserialize_with = "decimal_number")]
            pub $name: Option<String>,
        ] $($rest)*);
    };
    (@settings [$($done:tt)*] {$name:ident, [$($attr:tt)*], bool} $($rest:tt)*) => {
        serve_options!(@settings [
            $($done)*
            $($attr)*
            #[serde(default, deserialize_with = "boolean")]
            pub $name: Option<String>,
        ] $($rest)*);
    };
    (@settings [$($done:tt)*] {$name:ident, [$($attr:tt)*], list} $($rest:tt)*) => {
        serve_options!(@settings [
            $($done)*
            $($attr)*
            #[serde(default)]
            pub $name: Vec<String>,
        ] $($rest)*);
    };
    (@settings [$($done:tt)*] {$name:ident, [$($attr:tt)*], $kind:ident} $($rest:tt)*) => {
        serve_options!(@settings [
            $($done)*
            $($attr)*
            pub $name: Option<String>,
        ] $($rest)*);
    };

    // The typed value of one option.
    (@resolve $r:ident, $storage:ident, $key:expr, $default:expr, list($parse:expr)) => {
        $r.list($key, || $default, $parse)
    };
    (@resolve $r:ident, $storage:ident, $key:expr, $default:expr, secret) => {
        $r.secret($key)
    };
    (@resolve $r:ident, $storage:ident, $key:expr, $default:expr, custom($parse:expr)) => {
        $r.parse($key, || $default, |v| $parse(v, $storage))
    };
    (@resolve $r:ident, $storage:ident, $key:expr, $default:expr, $($kind:tt)*) => {
        $r.parse($key, || $default, serve_options!(@parser $($kind)*))
    };

    // The parser of an option whose value is text in every layer.
    (@parser duration($min:expr, $max:expr)) => {
        crate::config::duration($min, $max, None)
    };
    (@parser duration($min:expr, $max:expr, $bounds:literal)) => {
        crate::config::duration($min, $max, Some($bounds))
    };
    (@parser whole($min:expr, $max:expr)) => {
        crate::config::whole($min, $max)
    };
    (@parser decimal($min:expr, $max:expr)) => {
        crate::config::decimal($min, $max)
    };
    (@parser bool) => {
        crate::config::parse_bool
    };
    (@parser text($parse:expr)) => {
        $parse
    };

    // The check of an option's `[default: …]`: it must parse to the default where the kind
    // has a parser of plain text, except that a `text` option may show what no value can be
    // (`none`, `http://<listen address>`).
    (@check $key:expr, $ty:ty, $default:expr, [], $($kind:tt)*) => {};
    (@check $key:expr, $ty:ty, $default:expr, [$shown:literal], text($parse:expr)) => {
        let parsed: Result<$ty, String> = ($parse)($shown);
        if let Ok(value) = parsed {
            assert_eq!(value, $default, "--help shows the default of {}", $key);
        }
    };
    (@check $key:expr, $ty:ty, $default:expr, [$shown:literal], custom($parse:expr)) => {};
    (@check $key:expr, $ty:ty, $default:expr, [$shown:literal], list($parse:expr)) => {};
    (@check $key:expr, $ty:ty, $default:expr, [$shown:literal], secret) => {};
    (@check $key:expr, $ty:ty, $default:expr, [$shown:literal], $($kind:tt)*) => {
        let parsed: Result<$ty, String> = serve_options!(@parser $($kind)*)($shown);
        match parsed {
            Ok(value) => assert_eq!(value, $default, "--help shows the default of {}", $key),
            Err(e) => panic!("the default of {} in --help does not parse: {e}", $key),
        }
    };
}
