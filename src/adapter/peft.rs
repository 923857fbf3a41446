//! PEFT's LoRA adapter format: `adapter_config.json` (what we write, what we accept) and the key
//! names of `adapter_model.safetensors` in both transformers layouts (docs/design.md §4.4).
//!
//! Keys are `base_model.model.{module}.lora_A.weight` / `lora_B.weight`, where a decoder module is
//! `model.language_model.layers.{i}.self_attn.q_proj` (transformers 5) or
//! `language_model.model.layers.{i}.self_attn.q_proj` (transformers 4). Keys are brought to the
//! transformers-5 form, the one `gacha` writes and the model names its LoRA variables with.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};

use crate::model::{LoraTarget, DECODER_LAYERS_V4, DECODER_LAYERS_V5, PEFT_KEY_PREFIX};

/// The file PEFT reads the configuration from.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The file PEFT reads the weights from.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// `target_modules`: a list of module names or name suffixes, or one regex that must match a
/// whole module name (PEFT's `re.fullmatch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    List(Vec<String>),
    Regex(String),
}

/// The part of `adapter_config.json` we read or write. Keys we do not name are ignored when
/// reading, after the checks in [`PeftConfig::check_supported`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeftConfig {
    pub peft_type: String,
    pub r: usize,
    pub lora_alpha: f64,
    pub target_modules: TargetModules,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub task_type: Option<String>,
    #[serde(default = "bias_none")]
    pub bias: String,
    #[serde(default)]
    pub lora_dropout: f64,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub inference_mode: bool,
    #[serde(default)]
    pub lora_bias: bool,
    /// Every other key, as written; those of [`UNSUPPORTED_WHEN_SET`] must be unset.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Keys that change which weights an adapter touches or how, with why we refuse them when set
/// (anything but null, false, `{}` or `[]`).
const UNSUPPORTED_WHEN_SET: [(&str, &str); 8] = [
    ("rank_pattern", "per-module ranks are not supported"),
    ("alpha_pattern", "per-module alphas are not supported"),
    ("modules_to_save", "fully trained extra modules are not supported"),
    ("layers_to_transform", "LoRA on only some layers is not supported"),
    ("exclude_modules", "excluding modules is not supported"),
    ("layer_replication", "replicated layers are not supported"),
    ("target_parameters", "LoRA on raw parameters is not supported"),
    ("trainable_token_indices", "trained token embeddings are not supported"),
];

fn is_set(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null | serde_json::Value::Bool(false) => false,
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn bias_none() -> String {
    "none".to_string()
}

impl PeftConfig {
    /// The configuration `gacha train` writes: LoRA on `targets` of the language model only.
    pub fn for_targets(rank: usize, alpha: f64, targets: &[LoraTarget], base_model: &str) -> PeftConfig {
        let names: Vec<&str> = targets.iter().map(|t| t.module_name()).collect();
        PeftConfig {
            peft_type: "LORA".to_string(),
            r: rank,
            lora_alpha: alpha,
            target_modules: TargetModules::Regex(format!(r".*language_model.*\.({})", names.join("|"))),
            use_rslora: false,
            use_dora: false,
            base_model_name_or_path: Some(base_model.to_string()),
            task_type: None,
            bias: bias_none(),
            lora_dropout: 0.0,
            fan_in_fan_out: false,
            inference_mode: true,
            lora_bias: false,
            other: BTreeMap::new(),
        }
    }

    /// Refuse settings that would change the adapter's meaning in ways the model does not follow.
    pub fn check_supported(&self) -> anyhow::Result<()> {
        ensure!(
            self.peft_type == "LORA",
            "peft_type is {:?}; only LORA adapters are supported",
            self.peft_type
        );
        ensure!(
            !self.use_dora,
            "use_dora is true: DoRA adapters are not supported (train a plain LoRA adapter)"
        );
        ensure!(self.r > 0, "r is 0; a LoRA rank must be at least 1");
        ensure!(
            self.bias == "none",
            "bias is {:?}: trained biases are not supported (expected \"none\")",
            self.bias
        );
        ensure!(!self.lora_bias, "lora_bias is true: LoRA biases are not supported");
        ensure!(!self.fan_in_fan_out, "fan_in_fan_out is true: only nn.Linear layouts are supported");
        for (key, why) in UNSUPPORTED_WHEN_SET {
            if let Some(value) = self.other.get(key).filter(|v| is_set(v)) {
                bail!("{key} is set ({value}): {why}");
            }
        }
        Ok(())
    }

    /// The alpha to give the model, whose scale is `alpha / r`: with rsLoRA the scale is
    /// `lora_alpha / √r`, i.e. an alpha of `lora_alpha · √r`.
    pub fn model_alpha(&self) -> f64 {
        match self.use_rslora {
            true => self.lora_alpha * (self.r as f64).sqrt(),
            false => self.lora_alpha,
        }
    }

    /// The same configuration at `factor` times the rank, with `lora_alpha` changed so that PEFT's
    /// scale (`lora_alpha / r`, or `lora_alpha / √r` with rsLoRA) stays what it was.
    pub fn with_rank_times(&self, factor: usize) -> PeftConfig {
        let lora_alpha = match self.use_rslora {
            true => self.lora_alpha * (factor as f64).sqrt(),
            false => self.lora_alpha * factor as f64,
        };
        PeftConfig { r: self.r * factor, lora_alpha, ..self.clone() }
    }

    /// The language-model projections `target_modules` selects in a `num_layers`-layer decoder,
    /// named as in the adapter's own key `layout`. A target must select all layers or none.
    pub fn targets(&self, layout: KeyLayout, num_layers: usize) -> anyhow::Result<Vec<LoraTarget>> {
        let matcher = Matcher::new(&self.target_modules)?;
        let mut targets = Vec::new();
        for target in LoraTarget::ALL {
            let hits: Vec<usize> =
                (0..num_layers).filter(|&i| matcher.matches(&layout.module(i, target))).collect();
            match hits.len() {
                0 => {}
                n if n == num_layers => targets.push(target),
                _ => bail!(
                    "target_modules selects {target} in layers {hits:?} only; LoRA on some layers is not supported"
                ),
            }
        }
        ensure!(
            !targets.is_empty(),
            "target_modules {:?} selects no projection of the language model (e.g. {})",
            self.target_modules,
            layout.module(0, LoraTarget::Q)
        );
        Ok(targets)
    }
}

enum Matcher<'a> {
    List(&'a [String]),
    Regex(regex::Regex),
}

impl<'a> Matcher<'a> {
    fn new(target_modules: &'a TargetModules) -> anyhow::Result<Matcher<'a>> {
        Ok(match target_modules {
            TargetModules::List(names) => Matcher::List(names),
            TargetModules::Regex(re) => Matcher::Regex(
                regex::Regex::new(&format!("^(?:{re})$"))
                    .with_context(|| format!("target_modules {re:?} is not a regex we can read"))?,
            ),
        })
    }

    /// PEFT's rule: a list entry matches the whole name or its last dotted components.
    fn matches(&self, module: &str) -> bool {
        match self {
            Matcher::List(names) => names
                .iter()
                .any(|n| module == n || module.strip_suffix(n.as_str()).is_some_and(|h| h.ends_with('.'))),
            Matcher::Regex(re) => re.is_match(module),
        }
    }
}

/// Which transformers version's module names an adapter's keys use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    /// `model.language_model.layers.{i}…` (transformers 5, what gacha writes).
    Transformers5,
    /// `language_model.model.layers.{i}…` (transformers 4).
    Transformers4,
}

impl KeyLayout {
    fn layers_prefix(self) -> &'static str {
        match self {
            KeyLayout::Transformers5 => DECODER_LAYERS_V5,
            KeyLayout::Transformers4 => DECODER_LAYERS_V4,
        }
    }

    /// The module name of one decoder projection in this layout.
    pub fn module(self, layer: usize, target: LoraTarget) -> String {
        format!("{}{layer}.{}", self.layers_prefix(), target.module_path())
    }

    /// The layout a key is written in, or `None` when it is not a decoder-layer key.
    fn of_key(key: &str) -> Option<KeyLayout> {
        let module = key.strip_prefix(PEFT_KEY_PREFIX)?;
        [KeyLayout::Transformers5, KeyLayout::Transformers4]
            .into_iter()
            .find(|l| module.starts_with(l.layers_prefix()))
    }
}

/// Adapter tensors under transformers-5 keys, and the layout the file used.
#[derive(Debug)]
pub struct CanonicalKeys<T> {
    pub layout: KeyLayout,
    pub tensors: BTreeMap<String, T>,
}

/// Bring every key to the transformers-5 form. All keys must be decoder-layer keys of one layout;
/// any other key (vision tower, embeddings, a typo) is an error naming it.
pub fn canonical_keys<T>(tensors: impl IntoIterator<Item = (String, T)>) -> anyhow::Result<CanonicalKeys<T>> {
    let mut layout = None;
    let mut out = BTreeMap::new();
    for (key, tensor) in tensors {
        let Some(this) = KeyLayout::of_key(&key) else {
            bail!(
                "unknown key {key}: only LoRA weights of the language model's decoder layers are supported \
                 (keys like {PEFT_KEY_PREFIX}{DECODER_LAYERS_V5}0.self_attn.q_proj.lora_A.weight)"
            );
        };
        match layout {
            None => layout = Some(this),
            Some(first) if first != this => bail!("key {key} mixes transformers 4 and 5 module names"),
            Some(_) => {}
        }
        let rest = &key[PEFT_KEY_PREFIX.len() + this.layers_prefix().len()..];
        out.insert(format!("{PEFT_KEY_PREFIX}{DECODER_LAYERS_V5}{rest}"), tensor);
    }
    let layout = layout.context("the adapter holds no tensors")?;
    Ok(CanonicalKeys { layout, tensors: out })
}

/// The keys of `expected` missing from `found`, and those of `found` not expected, sorted.
pub fn key_differences<'a>(
    expected: impl IntoIterator<Item = &'a str>,
    found: impl IntoIterator<Item = &'a str>,
) -> (Vec<&'a str>, Vec<&'a str>) {
    let expected: BTreeSet<&str> = expected.into_iter().collect();
    let found: BTreeSet<&str> = found.into_iter().collect();
    (expected.difference(&found).copied().collect(), found.difference(&expected).copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> PeftConfig {
        serde_json::from_str(json).unwrap()
    }

    const BASE: &str = r#""peft_type": "LORA", "r": 4, "lora_alpha": 8"#;

    #[test]
    fn written_regex_selects_only_the_language_model_in_both_layouts() {
        let written = PeftConfig::for_targets(2, 4.0, &[LoraTarget::Q, LoraTarget::Down], "x");
        assert_eq!(
            written.target_modules,
            TargetModules::Regex(r".*language_model.*\.(q_proj|down_proj)".into())
        );
        for layout in [KeyLayout::Transformers5, KeyLayout::Transformers4] {
            assert_eq!(written.targets(layout, 3).unwrap(), vec![LoraTarget::Q, LoraTarget::Down]);
        }
        let m = Matcher::new(&written.target_modules).unwrap();
        assert!(!m.matches("model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj"));
        // Round trip through JSON keeps every field.
        let json = serde_json::to_string(&written).unwrap();
        assert_eq!(config(&json), written);
    }

    #[test]
    fn list_targets_match_names_and_suffixes_like_peft() {
        let c = config(&format!(
            r#"{{{BASE}, "target_modules": ["q_proj", "self_attn.v_proj", "mlp.up_proj"]}}"#
        ));
        assert_eq!(
            c.targets(KeyLayout::Transformers4, 2).unwrap(),
            vec![LoraTarget::Q, LoraTarget::V, LoraTarget::Up]
        );
        let m = Matcher::new(&c.target_modules).unwrap();
        assert!(!m.matches("model.language_model.layers.0.self_attn.xq_proj"));
    }

    #[test]
    fn partial_layer_targets_and_empty_selections_are_refused() {
        let c = config(&format!(r#"{{{BASE}, "target_modules": ".*layers\\.0\\.self_attn\\.q_proj"}}"#));
        let err = c.targets(KeyLayout::Transformers5, 2).unwrap_err().to_string();
        assert!(err.contains("q_proj in layers [0]"), "{err}");
        let c = config(&format!(r#"{{{BASE}, "target_modules": ["fc1"]}}"#));
        assert!(c
            .targets(KeyLayout::Transformers5, 2)
            .unwrap_err()
            .to_string()
            .contains("selects no projection"));
    }

    #[test]
    fn dora_and_other_unsupported_settings_are_refused_by_name() {
        for (extra, word) in [
            (r#""use_dora": true"#, "DoRA"),
            (r#""bias": "all""#, "bias"),
            (r#""rank_pattern": {"q_proj": 8}"#, "rank_pattern"),
            (r#""modules_to_save": ["lm_head"]"#, "modules_to_save"),
            (r#""layers_to_transform": [0]"#, "layers_to_transform"),
            (r#""target_parameters": ["experts.gate_up_proj"]"#, "target_parameters"),
            (r#""peft_type": "IA3""#, "IA3"),
        ] {
            let mut json: serde_json::Value = serde_json::from_str(
                r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}"#,
            )
            .unwrap();
            let setting: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&format!("{{{extra}}}")).unwrap();
            json.as_object_mut().unwrap().extend(setting);
            let err = serde_json::from_value::<PeftConfig>(json)
                .unwrap()
                .check_supported()
                .unwrap_err()
                .to_string();
            assert!(err.contains(word), "{extra}: {err}");
        }
        // As PEFT 0.21 writes them when unused.
        let ok = config(&format!(
            r#"{{{BASE}, "target_modules": ["q_proj"], "layers_to_transform": null, "rank_pattern": {{}},
                "loftq_config": {{}}, "use_qalora": false, "target_parameters": null, "peft_version": "0.21.2"}}"#
        ));
        ok.check_supported().unwrap();
    }

    #[test]
    fn rslora_scales_by_the_square_root_of_the_rank() {
        // scale = alpha/√r = 8/2 = 4; the model divides by r = 4, so its alpha must be 16.
        let c = config(&format!(r#"{{{BASE}, "target_modules": ["q_proj"], "use_rslora": true}}"#));
        assert_eq!(c.model_alpha(), 16.0);
        let c = config(&format!(r#"{{{BASE}, "target_modules": ["q_proj"]}}"#));
        assert_eq!(c.model_alpha(), 8.0);
    }

    #[test]
    fn a_rank_times_k_keeps_the_scale() {
        // Plain: 8/4 = 2 and 24/12 = 2. rsLoRA: 8/√4 = 4 and 8·√3/√12 = 8·√3/(2·√3) = 4.
        let plain = config(&format!(r#"{{{BASE}, "target_modules": ["q_proj"]}}"#)).with_rank_times(3);
        assert_eq!((plain.r, plain.lora_alpha), (12, 24.0));
        let rs = config(&format!(r#"{{{BASE}, "target_modules": ["q_proj"], "use_rslora": true}}"#))
            .with_rank_times(3);
        assert_eq!(rs.r, 12);
        assert!((rs.lora_alpha / 12f64.sqrt() - 4.0).abs() < 1e-12, "{}", rs.lora_alpha);
        assert_eq!(rs.target_modules, TargetModules::List(vec!["q_proj".into()]));
    }

    #[test]
    fn keys_of_both_layouts_become_transformers5_keys() {
        let v4 =
            [("base_model.model.language_model.model.layers.1.mlp.up_proj.lora_A.weight".to_string(), 1)];
        let c = canonical_keys(v4).unwrap();
        assert_eq!(c.layout, KeyLayout::Transformers4);
        assert_eq!(
            c.tensors.keys().next().unwrap(),
            "base_model.model.model.language_model.layers.1.mlp.up_proj.lora_A.weight"
        );
        let v5 = [(
            "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_B.weight".to_string(),
            1,
        )];
        assert_eq!(canonical_keys(v5).unwrap().layout, KeyLayout::Transformers5);
    }

    #[test]
    fn foreign_and_mixed_keys_are_errors_naming_the_key() {
        let vision = "base_model.model.model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.lora_A.weight";
        let err = canonical_keys([(vision.to_string(), 1)]).unwrap_err().to_string();
        assert!(err.contains(vision), "{err}");
        let mixed = [
            ("base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight".to_string(), 1),
            ("base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_B.weight".to_string(), 1),
        ];
        assert!(canonical_keys(mixed).unwrap_err().to_string().contains("mixes"));
        assert!(canonical_keys(Vec::<(String, i32)>::new()).is_err());
    }

    #[test]
    fn key_differences_lists_missing_and_unknown() {
        let (missing, unknown) = key_differences(["a", "b", "c"], ["b", "c", "d"]);
        assert_eq!((missing, unknown), (vec!["a"], vec!["d"]));
    }
}
