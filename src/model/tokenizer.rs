//! Prompt tokenisation (docs/design.md §6): ids are built by hand as
//! `<bos> encode(prompt) "\n" answer <eos>` (never through the tokenizer's post-processor), batches
//! are right-padded, and the prefix-LM attention mask is derived from them.
//!
//! At construction the tokenizer must encode `"\n"` and each answer word to exactly one known token
//! (not its unknown token: a word-level vocabulary maps every word it lacks to that one id).

use std::path::Path;

use anyhow::Context;
use candle_core::{Device, Result as CandleResult, Tensor};
use tokenizers::Tokenizer;

use crate::data::{Answers, Label};

/// One example to score: a prompt and the answer it should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptItem<'a> {
    pub prompt: &'a str,
    pub answer: Label,
}

/// The token ids the sequence layout needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenIds {
    pub pad: u32,
    pub eos: u32,
    pub bos: u32,
    pub newline: u32,
    /// The positive answer word (default `yes`).
    pub positive: u32,
    /// The negative answer word (default `no`).
    pub negative: u32,
}

/// Ids of the special tokens, as `config.json` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    pub pad: u32,
    pub eos: u32,
    pub bos: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(
        "{what} {word:?} must be exactly one token, but the tokenizer encodes it to {} tokens {tokens:?} \
         (ids {ids:?})",
        ids.len()
    )]
    NotOneToken { what: &'static str, word: String, tokens: Vec<String>, ids: Vec<u32> },
    #[error(
        "{what} {word:?} is not in the tokenizer's vocabulary (it becomes the unknown token {unk}, \
         id {id}); choose a word the tokenizer knows"
    )]
    UnknownToken { what: &'static str, word: String, unk: String, id: u32 },
    #[error(
        "the answers {positive:?} and {negative:?} are the same token {token:?} (id {id}): the tokenizer \
         does not tell them apart"
    )]
    SameAnswerToken { positive: String, negative: String, token: String, id: u32 },
    #[error("cannot tokenize {text:?}: {message}")]
    Encode { text: String, message: String },
}

/// What [`PromptTokenizer::inspect_prompt`] finds in a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTokens {
    pub tokens: usize,
    /// The words that became the unknown token, in order.
    pub unknown: Vec<String>,
}

/// A `tokenizers::Tokenizer` with the ids of `"\n"` and the two answer words checked.
#[derive(Debug, Clone)]
pub struct PromptTokenizer {
    tokenizer: Tokenizer,
    answers: Answers,
    ids: TokenIds,
}

impl PromptTokenizer {
    pub fn new(tokenizer: Tokenizer, special: SpecialIds, answers: &Answers) -> Result<Self, TokenizerError> {
        let one = |what, word: &str| -> Result<u32, TokenizerError> {
            let encoding = encode(&tokenizer, word)?;
            match encoding.get_ids() {
                [id] if Some(*id) == unknown_id(&tokenizer) => Err(TokenizerError::UnknownToken {
                    what,
                    word: word.to_string(),
                    unk: UNKNOWN_TOKEN.to_string(),
                    id: *id,
                }),
                [id] => Ok(*id),
                ids => Err(TokenizerError::NotOneToken {
                    what,
                    word: word.to_string(),
                    tokens: encoding.get_tokens().to_vec(),
                    ids: ids.to_vec(),
                }),
            }
        };
        let newline = one("the separator", "\n")?;
        let positive = one("the answer", &answers.positive)?;
        let negative = one("the answer", &answers.negative)?;
        if positive == negative {
            return Err(TokenizerError::SameAnswerToken {
                positive: answers.positive.clone(),
                negative: answers.negative.clone(),
                token: tokenizer.id_to_token(positive).unwrap_or_default(),
                id: positive,
            });
        }
        let ids =
            TokenIds { pad: special.pad, eos: special.eos, bos: special.bos, newline, positive, negative };
        Ok(PromptTokenizer { tokenizer, answers: answers.clone(), ids })
    }

    /// Read a `tokenizer.json`.
    pub fn from_file(path: &Path, special: SpecialIds, answers: &Answers) -> anyhow::Result<Self> {
        if !path.is_file() {
            anyhow::bail!("{}: tokenizer file not found", path.display());
        }
        let tokenizer = Tokenizer::from_file(path)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("{}: cannot read tokenizer", path.display()))?;
        PromptTokenizer::new(tokenizer, special, answers).with_context(|| path.display().to_string())
    }

    /// The same tokenizer with other answer words (checked again).
    pub fn with_answers(&self, answers: &Answers) -> Result<Self, TokenizerError> {
        let special = SpecialIds { pad: self.ids.pad, eos: self.ids.eos, bos: self.ids.bos };
        PromptTokenizer::new(self.tokenizer.clone(), special, answers)
    }

    pub fn answers(&self) -> &Answers {
        &self.answers
    }

    pub fn ids(&self) -> TokenIds {
        self.ids
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// `encode(prompt, add_special_tokens = false)`.
    pub fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>, TokenizerError> {
        Ok(encode(&self.tokenizer, prompt)?.get_ids().to_vec())
    }

    /// How `prompt` tokenizes: its token count and the words the vocabulary lacks (each became
    /// [`UNKNOWN_TOKEN`]), as they are written in `prompt`.
    pub fn inspect_prompt(&self, prompt: &str) -> Result<PromptTokens, TokenizerError> {
        let encoding = encode(&self.tokenizer, prompt)?;
        let unk = unknown_id(&self.tokenizer);
        let unknown = (encoding.get_ids().iter().zip(encoding.get_offsets()))
            .filter(|&(&id, _)| Some(id) == unk)
            .map(|(_, &(start, end))| prompt.get(start..end).unwrap_or_default().to_string())
            .collect();
        Ok(PromptTokens { tokens: encoding.len(), unknown })
    }

    fn answer_id(&self, label: Label) -> u32 {
        match label {
            Label::Positive => self.ids.positive,
            Label::Negative => self.ids.negative,
        }
    }

    /// The text part of one example: `[<bos>, prompt…, "\n", answer, <eos>]`.
    pub fn text_ids(&self, item: &PromptItem) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = vec![self.ids.bos];
        ids.extend(self.encode_prompt(item.prompt)?);
        ids.extend([self.ids.newline, self.answer_id(item.answer), self.ids.eos]);
        Ok(ids)
    }

    /// Tokenize and right-pad a batch.
    pub fn batch(&self, items: &[PromptItem]) -> Result<PromptBatch, TokenizerError> {
        let rows = items.iter().map(|item| self.text_ids(item)).collect::<Result<Vec<_>, _>>()?;
        Ok(PromptBatch::new(&rows, self.ids))
    }
}

/// The unknown token of Gemma's SentencePiece vocabulary and of the built-in word-level one.
pub const UNKNOWN_TOKEN: &str = "<unk>";

/// The id of [`UNKNOWN_TOKEN`], where the vocabulary has it.
fn unknown_id(tokenizer: &Tokenizer) -> Option<u32> {
    tokenizer.token_to_id(UNKNOWN_TOKEN)
}

fn encode(tokenizer: &Tokenizer, text: &str) -> Result<tokenizers::Encoding, TokenizerError> {
    tokenizer
        .encode(text, false)
        .map_err(|e| TokenizerError::Encode { text: text.to_string(), message: e.to_string() })
}

/// Additive mask value for a key a query may not see (transformers adds `finfo(float32).min`).
const MASKED: f32 = f32::MIN;

/// A tokenized, right-padded batch.
///
/// The decoder input of row `b` is the image rows followed by `[<bos>, prompt…, "\n", answer]`
/// (the final `<eos>` is only a target: no loss-bearing position can see it, so feeding it would
/// change nothing). Loss targets: the answer at the `"\n"` position, `<eos>` at the answer position.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptBatch {
    /// `[B × text_len]`, row-major, padded with `<pad>`.
    ids: Vec<u32>,
    text_len: usize,
    /// Real text tokens per row (`<bos>` … answer).
    lengths: Vec<usize>,
    /// `[B × 2]`: answer id, `<eos>`.
    targets: Vec<u32>,
    token_ids: TokenIds,
}

impl PromptBatch {
    /// From full text rows `[<bos>, …, "\n", answer, <eos>]`.
    fn new(rows: &[Vec<u32>], token_ids: TokenIds) -> PromptBatch {
        let lengths: Vec<usize> = rows.iter().map(|r| r.len() - 1).collect();
        let text_len = lengths.iter().copied().max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * text_len);
        let mut targets = Vec::with_capacity(rows.len() * 2);
        for (row, &len) in rows.iter().zip(&lengths) {
            ids.extend_from_slice(&row[..len]);
            ids.extend(std::iter::repeat_n(token_ids.pad, text_len - len));
            targets.extend_from_slice(&row[len - 1..]);
        }
        PromptBatch { ids, text_len, lengths, targets, token_ids }
    }

    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    pub fn token_ids(&self) -> TokenIds {
        self.token_ids
    }

    /// Text input ids `[B, text_len]` (u32).
    pub fn input_ids(&self, device: &Device) -> CandleResult<Tensor> {
        Tensor::from_slice(&self.ids, (self.len(), self.text_len), device)
    }

    /// Loss targets `[B, 2]` (u32): answer, `<eos>`.
    pub fn targets(&self, device: &Device) -> CandleResult<Tensor> {
        Tensor::from_slice(&self.targets, (self.len(), 2), device)
    }

    /// Sequence positions of the two loss rows of each example (`"\n"`, answer), row-major `[B·2]`,
    /// with `num_image` image rows in front of the text.
    pub fn loss_positions(&self, num_image: usize) -> Vec<u32> {
        (self.lengths.iter())
            .flat_map(|&len| {
                let newline = (num_image + len - 2) as u32;
                [newline, newline + 1]
            })
            .collect()
    }

    /// The prefix-LM attention mask, additive, `[B, 1, T, T]` f32 (docs/design.md §6).
    ///
    /// Block 0 = image + `<bos>` + prompt + `"\n"` (attend to each other fully), block 1 = the
    /// answer (sees block 0 and itself). Query `i` may see key `j` iff `j` is not padding and
    /// `block(j) ≤ block(i)`; padding queries are put in block 1 (their rows are never used).
    pub fn attention_mask(&self, num_image: usize, device: &Device) -> CandleResult<Tensor> {
        let t = num_image + self.text_len;
        let mut mask = vec![0f32; self.len() * t * t];
        for (b, &len) in self.lengths.iter().enumerate() {
            let valid = |j: usize| j < num_image + len;
            let block = |j: usize| usize::from(j + 1 >= num_image + len);
            for i in 0..t {
                let row = &mut mask[(b * t + i) * t..(b * t + i + 1) * t];
                for (j, m) in row.iter_mut().enumerate() {
                    if !valid(j) || block(j) > block(i) {
                        *m = MASKED;
                    }
                }
            }
        }
        Tensor::from_vec(mask, (self.len(), 1, t, t), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> TokenIds {
        TokenIds { pad: 0, eos: 1, bos: 2, newline: 9, positive: 7, negative: 8 }
    }

    fn builtin(answers: [&str; 2]) -> Result<PromptTokenizer, TokenizerError> {
        let special = SpecialIds { pad: 0, eos: 1, bos: 2 };
        let [positive, negative] = answers.map(String::from);
        PromptTokenizer::new(
            crate::model::init::builtin_tokenizer(),
            special,
            &Answers { positive, negative },
        )
    }

    #[test]
    fn an_answer_outside_the_vocabulary_is_named_as_unknown_not_as_a_twin() {
        // The word-level vocabulary has no Japanese: both words would be <unk> (id 3).
        let err = builtin(["はい", "いいえ"]).unwrap_err().to_string();
        assert_eq!(
            err,
            "the answer \"はい\" is not in the tokenizer's vocabulary (it becomes the unknown token \
             <unk>, id 3); choose a word the tokenizer knows"
        );
        let err = builtin(["yes", "red badge"]).unwrap_err().to_string();
        assert!(
            err.contains("\"red badge\" must be exactly one token, but the tokenizer encodes it to 2 tokens"),
            "{err}"
        );
    }

    #[test]
    fn inspecting_a_prompt_counts_tokens_and_quotes_unknown_words_as_written() {
        let tokenizer = builtin(["yes", "no"]).unwrap();
        // "Is", "this", "Zebra", "ad", "?", "Qux": the two made-up words are unknown.
        let found = tokenizer.inspect_prompt("Is this Zebra ad? Qux").unwrap();
        assert_eq!(found, PromptTokens { tokens: 6, unknown: vec!["Zebra".into(), "Qux".into()] });
        assert_eq!(tokenizer.inspect_prompt("").unwrap(), PromptTokens { tokens: 0, unknown: vec![] });
    }

    #[test]
    fn batch_pads_right_and_places_targets() {
        let batch = PromptBatch::new(&[vec![2, 5, 9, 7, 1], vec![2, 5, 6, 6, 9, 8, 1]], ids());
        assert_eq!(batch.text_len, 6);
        assert_eq!(batch.ids, vec![2, 5, 9, 7, 0, 0, 2, 5, 6, 6, 9, 8]);
        assert_eq!(batch.targets, vec![7, 1, 8, 1]);
        // Two image rows: row 0 has "\n" at 2 + 2 = 4, row 1 at 2 + 4 = 6.
        assert_eq!(batch.loss_positions(2), vec![4, 5, 6, 7]);
    }

    #[test]
    fn mask_is_prefix_lm_with_padding_masked() {
        // One image token, text [bos, p, "\n", answer] and a shorter row [bos, "\n", answer, pad].
        let batch = PromptBatch::new(&[vec![2, 5, 9, 7, 1], vec![2, 9, 8, 1]], ids());
        let mask: Vec<Vec<Vec<f32>>> =
            batch.attention_mask(1, &Device::Cpu).unwrap().squeeze(1).unwrap().to_vec3().unwrap();
        let seen = |b: usize| -> Vec<String> {
            mask[b].iter().map(|r| r.iter().map(|&m| if m == 0.0 { '1' } else { '.' }).collect()).collect()
        };
        // Positions: img, bos, p, "\n", answer.
        assert_eq!(seen(0), ["1111.", "1111.", "1111.", "1111.", "11111"]);
        // Positions: img, bos, "\n", answer, pad.
        assert_eq!(seen(1), ["111..", "111..", "111..", "1111.", "1111."]);
    }
}
