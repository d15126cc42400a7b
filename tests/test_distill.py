"""Distillation on the tiny model: the student moves toward its teacher, resumes to the same weights, and
bad layer counts, heads and data are refused by name."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from earshot.cli import main
from earshot.model import EarshotModel, Head
from earshot.training import ColumnMapping, HeadColumn, Trainer, TrainingConfig, read_examples, split_validation
from earshot.training.data import DataError, read_texts
from earshot.training.distill import (DistillationConfig, DistillationTrainer, LayerTaps, embedding_loss,
                                     layer_pairs, narrow_ffn, soften, student_from_layers, student_start,
                                     token_state_loss)

MAPPING = ColumnMapping(heads=(HeadColumn("sentiment", "single", "sentiment"),
                               HeadColumn("pain_points", "multi", "pain_points")))


def _config(out: Path, **overrides) -> TrainingConfig:
    settings = dict(output_dir=str(out), recipe="fine-tune", epochs=3, batch_size=16, learning_rate=2e-3,
                    head_learning_rate=1e-2, patience=0, progress=False)
    return TrainingConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def teacher_dir(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on the fixture file: answers that a fresh student does not give."""
    from conftest import FEEDBACK_CSV

    data = read_examples(FEEDBACK_CSV, MAPPING)
    train, validation = split_validation(data.examples, 0.25, seed=3)
    folder = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    teacher = EarshotModel.from_base(str(tiny_base), data.heads(MAPPING), max_length=32)
    Trainer(teacher, train, validation, _config(folder, epochs=4)).train()
    return folder


def _split(feedback_csv: Path):
    data = read_examples(feedback_csv, MAPPING)
    return split_validation(data.examples, 0.25, seed=3)


def _fresh_student(tiny_base: Path, teacher: EarshotModel, seed: int = 1) -> EarshotModel:
    torch.manual_seed(seed)
    return EarshotModel.from_base(str(tiny_base), teacher.config.heads, max_length=32)


def _cosine(a: EarshotModel, b: EarshotModel, texts: list[str]) -> float:
    ea, eb = a.embed(texts), b.embed(texts)
    return float(np.mean(np.sum(ea * eb, axis=1) / (np.linalg.norm(ea, axis=1) * np.linalg.norm(eb, axis=1))))


def _distance(a: EarshotModel, b: EarshotModel, texts: list[str]) -> float:
    pa, pb = a.predict_proba(texts), b.predict_proba(texts)
    return float(np.mean([np.abs(pa[h.name] - pb[h.name]).mean() for h in a.config.heads]))


def test_the_students_answers_move_toward_the_teachers(tiny_base: Path, teacher_dir: Path, feedback_csv: Path,
                                                        tmp_path: Path) -> None:
    teacher = EarshotModel.from_pretrained(teacher_dir, device="cpu")
    train, validation = _split(feedback_csv)
    # Texts the teacher labels alone: the student never sees their gold.
    unlabelled = [type(e)(text=e.text, labels={}, row=e.row) for e in validation]
    student = _fresh_student(tiny_base, teacher)
    texts = [e.text for e in validation]
    before = _distance(student, teacher, texts)
    DistillationTrainer(student, teacher, [*train[:20], *unlabelled], validation, _config(tmp_path / "s", epochs=6),
                        DistillationConfig(temperature=1.0, gold_weight=0.0)).train()
    after = _distance(student, teacher, texts)
    assert after < 0.5 * before, (before, after)
    saved = EarshotModel.from_pretrained(tmp_path / "s", device="cpu")
    assert saved.config.provenance["teachers"] == [teacher.version]
    assert saved.config.provenance["distillation"] == {"temperature": 1.0, "gold_weight": 0.0, "embedding_weight": 0.0,
                                                       "hidden_weight": 0.0}
    pain = saved.config.head("pain_points")
    assert pain.thresholds != {label: 0.5 for label in pain.labels}  # tuned on the validation gold, as train does


def test_the_embedding_term_pulls_the_students_text_vectors_toward_the_teachers(
        tiny_base: Path, teacher_dir: Path, feedback_csv: Path, tmp_path: Path) -> None:
    teacher = EarshotModel.from_pretrained(teacher_dir, device="cpu")
    train, validation = _split(feedback_csv)
    texts = [e.text for e in validation]
    cosines = {}
    for weight in (0.0, 5.0):
        student = _fresh_student(tiny_base, teacher)
        DistillationTrainer(student, teacher, train, validation, _config(tmp_path / f"w{weight}", epochs=4),
                            DistillationConfig(embedding_weight=weight)).train()
        cosines[weight] = _cosine(EarshotModel.from_pretrained(tmp_path / f"w{weight}", device="cpu"), teacher, texts)
    assert cosines[5.0] > cosines[0.0] + 0.05, cosines


def test_embedding_loss_compares_vectors_or_for_other_widths_their_similarities() -> None:
    torch.manual_seed(0)
    student = torch.randn(6, 4)
    assert float(embedding_loss(student, 3 * student)) == pytest.approx(0.0, abs=1e-6)
    assert float(embedding_loss(student, -student)) == pytest.approx(2.0, abs=1e-6)
    # A wider teacher with the same geometry (an orthonormal map of the student's vectors) costs nothing;
    # shuffled rows change which texts resemble which, and cost something.
    rotation, _ = torch.linalg.qr(torch.randn(8, 8))
    wider = torch.cat([student, torch.zeros(6, 4)], dim=1) @ rotation
    assert float(embedding_loss(student, wider)) == pytest.approx(0.0, abs=1e-6)
    assert float(embedding_loss(student, wider[torch.tensor([1, 0, 3, 2, 5, 4])])) > 0.01
    with pytest.raises(ValueError, match="embedding_weight must be >= 0, got -1"):
        DistillationConfig(embedding_weight=-1)


def _layer_distance(student: EarshotModel, teacher: EarshotModel, texts: list[str]) -> float:
    """The layer term over ``texts``, with the pairs the trainer uses."""
    pairs = layer_pairs(len(student.encoder.encoder.layer), len(teacher.encoder.encoder.layer))
    mine, theirs = LayerTaps(student.encoder, [s for s, _ in pairs]), LayerTaps(teacher.encoder, [t for _, t in pairs])
    rows = student.encode(texts).input_ids
    student.eval()
    with torch.no_grad():
        student.forward_rows(rows)
        teacher.forward_rows(rows)
    real = torch.from_numpy(student.pass_inputs(rows)["input_ids"] != student.tokenizer.pad_token_id)
    distance = float(np.mean([token_state_loss(a, b, real) for a, b in zip(mine.take(), theirs.take())]))
    mine.remove()
    theirs.remove()
    return distance


def test_the_hidden_term_pulls_a_layer_students_token_states_toward_the_teachers(
        teacher_dir: Path, feedback_csv: Path, tmp_path: Path) -> None:
    teacher = EarshotModel.from_pretrained(teacher_dir, device="cpu")
    train, validation = _split(feedback_csv)
    texts = [e.text for e in validation]
    distances = {}
    for weight in (0.0, 5.0):
        # One layer of two: the student's only layer learns the teacher's second.
        student = student_from_layers(teacher, 1)
        DistillationTrainer(student, teacher, train, validation, _config(tmp_path / f"h{weight}", epochs=4),
                            DistillationConfig(hidden_weight=weight)).train()
        distances[weight] = _layer_distance(EarshotModel.from_pretrained(tmp_path / f"h{weight}", device="cpu"),
                                            teacher, texts)
    assert distances[5.0] < 0.7 * distances[0.0], distances
    assert not teacher.encoder.encoder.layer[1]._forward_hooks  # the taps are gone after training


def test_the_hidden_term_refuses_a_student_of_another_width(tiny_base: Path, teacher_dir: Path, feedback_csv: Path,
                                                            tmp_path: Path) -> None:
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    narrow = tmp_path / "narrow"
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=128)).save_pretrained(narrow)
    tokenizer.save_pretrained(narrow)
    teacher = EarshotModel.from_pretrained(teacher_dir, device="cpu")
    student = EarshotModel.from_base(str(narrow), teacher.config.heads, max_length=32)
    train, validation = _split(feedback_csv)
    trainer = DistillationTrainer(student, teacher, train, validation, _config(tmp_path / "n", epochs=1),
                                  DistillationConfig(hidden_weight=1.0))
    with pytest.raises(ValueError, match="the student is 16 wide and the teacher 32; use a --student-layers student"):
        trainer.train()


def test_layer_pairs_end_on_the_last_layers_and_the_state_loss_skips_padding() -> None:
    assert layer_pairs(3, 6) == [(0, 1), (1, 3), (2, 5)]
    assert layer_pairs(4, 6) == [(0, 1), (1, 2), (2, 4), (3, 5)]
    assert layer_pairs(2, 2) == [(0, 0), (1, 1)]
    student, teacher = torch.ones(1, 3, 4), torch.ones(1, 3, 4)
    teacher[0, 2] = -1  # a padding cell: opposite, but not counted
    assert float(token_state_loss(student, teacher, torch.tensor([[True, True, False]]))) == pytest.approx(0.0)
    assert float(token_state_loss(student, teacher, torch.tensor([[True, True, True]]))) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="hidden_weight must be >= 0, got -0.5"):
        DistillationConfig(hidden_weight=-0.5)


@pytest.mark.integration
def test_kill_9_then_resume_gives_the_same_student(teacher_dir: Path, feedback_csv: Path, tmp_path: Path) -> None:
    """`earshot distill` killed with SIGKILL after its second epoch, then `--resume`: the same weights as a
    run never killed."""
    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "earshot.cli", "distill", "--teacher", str(teacher_dir), "--data",
                str(feedback_csv), "--sentiment-column", "sentiment", "--pain-points-column", "pain_points",
                "--student-layers", "1", "--output", str(out), "--epochs", "30", "--patience", "0", "--batch-size",
                "16", "--learning-rate", "0.002", "--no-progress"]

    subprocess.run(command(tmp_path / "straight"), check=True, capture_output=True, timeout=600)
    process = subprocess.Popen(command(tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.monotonic() + 300
    while not any(checkpoints.glob("epoch-000[2-9]")):
        assert process.poll() is None, "distillation finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    resumed = subprocess.run([*command(tmp_path / "killed"), "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "the teacher's answers read from" in resumed.stderr and "resumed after epoch" in resumed.stderr
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    again = load_file(tmp_path / "killed" / "model.safetensors")
    for name, tensor in straight.items():
        torch.testing.assert_close(again[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_student_layers_come_from_the_teacher_and_a_count_it_lacks_is_refused(
        teacher_dir: Path, feedback_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    teacher = EarshotModel.from_pretrained(teacher_dir, device="cpu")
    student = student_from_layers(teacher, 1)
    assert student.encoder.config.num_hidden_layers == 1 and len(student.encoder.encoder.layer) == 1
    assert len(teacher.encoder.encoder.layer) == 2  # the teacher is untouched
    torch.testing.assert_close(student.encoder.encoder.layer[0].output.dense.weight,
                               teacher.encoder.encoder.layer[0].output.dense.weight)
    with pytest.raises(ValueError, match=r"--student-layers 3: the source encoder .* has 2 layers; choose from 1 to 2"):
        student_from_layers(teacher, 3)
    code = main(["distill", "--teacher", str(teacher_dir), "--data", str(feedback_csv), "--sentiment-column",
                 "sentiment", "--pain-points-column", "pain_points", "--student-layers", "5", "--output",
                 str(tmp_path / "never"), "--no-progress"])
    assert code == 2 and "choose from 1 to 2" in caplog.text
    assert not (tmp_path / "never").exists()


def test_cli_distills_a_layer_student_with_unlabelled_texts(teacher_dir: Path, feedback_csv: Path, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    more = tmp_path / "more.csv"
    more.write_text("body\nthe flight was late again\nthey lost my bag\nlovely crew\n", encoding="utf-8")
    common = ["distill", "--teacher", str(teacher_dir), "--data", str(feedback_csv), "--sentiment-column", "sentiment",
              "--pain-points-column", "pain_points", "--unlabelled", str(more), "--student-layers", "1", "--output",
              str(tmp_path / "fast"), "--epochs", "2", "--learning-rate", "0.002", "--no-progress"]
    assert main(common) == 2  # --text-column names the column of --data and --unlabelled alike
    assert "no text column 'text'. Found columns: ['body']" in caplog.text
    more.write_text(more.read_text(encoding="utf-8").replace("body", "text"), encoding="utf-8")
    assert main(common) == 0
    student = EarshotModel.from_pretrained(tmp_path / "fast", device="cpu")
    assert student.encoder.config.num_hidden_layers == 1
    distilled = student.config.provenance["distilled_from"]
    assert distilled["teacher"] == EarshotModel.from_pretrained(teacher_dir).version
    assert (distilled["student_layers"], distilled["unlabelled_rows"]) == (1, 3)
    assert "first 1 layers" in student.config.base_model
    # The model card names the teacher (earshot evaluate writes it into the model folder).
    assert main(["evaluate", "--model", str(tmp_path / "fast"), "--data", str(feedback_csv), "--sentiment-column",
                 "sentiment", "--pain-points-column", "pain_points"]) == 0
    card = (tmp_path / "fast" / "README.md").read_text(encoding="utf-8")
    assert f"Distilled from teacher `{distilled['teacher']}`" in card and "3 unlabelled rows" in card


def test_bad_distillation_input_is_named(teacher_dir: Path, feedback_csv: Path, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    code = main(["distill", "--teacher", str(teacher_dir), "--data", str(feedback_csv), "--sentiment-column",
                 "sentiment", "--output", str(tmp_path / "x"), "--no-progress"])
    assert code == 2 and "map a column of --data to each (missing: ['pain_points'])" in caplog.text
    empty = tmp_path / "empty.csv"
    empty.write_text("text\nfine\n\"  \"\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 2, column 'text': empty text"):
        read_texts(empty, "text")
    with pytest.raises(DataError, match=r"no text column 'body'. Found columns: \['text'\]"):
        read_texts(empty, "body")
    with pytest.raises(ValueError, match="gold_weight must be from 0 to 1, got 2"):
        DistillationConfig(gold_weight=2)
    teacher = EarshotModel.from_pretrained(teacher_dir, device="cpu")
    with pytest.raises(ValueError, match="--recipe few-shot does not apply"):
        DistillationTrainer(teacher, teacher, [], [], _config(tmp_path / "y", recipe="few-shot"))
    with pytest.raises(ValueError, match="--frozen-layers and --hidden-weight do not combine"):
        DistillationTrainer(teacher, teacher, [], [], _config(tmp_path / "z", frozen_layers=1),
                            DistillationConfig(hidden_weight=1.0))


def test_soften_keeps_the_order_and_flattens() -> None:
    single = soften(np.array([[0.7, 0.2, 0.1]]), "single", 2.0)
    assert single.sum() == pytest.approx(1.0) and single[0, 0] < 0.7 and single[0, 2] > 0.1
    assert np.argsort(single[0]).tolist() == [2, 1, 0]
    multi = soften(np.array([[0.9, 0.1, 0.5]]), "multi", 2.0)
    np.testing.assert_allclose(multi, [[0.75, 0.25, 0.5]], atol=1e-6)  # sigmoid(logit(0.9) / 2) = 3 / 4
    np.testing.assert_allclose(soften(np.array([[0.7, 0.3]]), "single", 1.0), [[0.7, 0.3]], atol=1e-6)


def test_a_student_can_keep_chosen_layers_and_they_survive_a_save(teacher_dir: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    teacher = EarshotModel.from_pretrained(teacher_dir, device="cpu")
    student = student_from_layers(teacher, [2])  # the top layer alone: what the heads were trained to read
    torch.testing.assert_close(student.encoder.encoder.layer[0].output.dense.weight,
                               teacher.encoder.encoder.layer[1].output.dense.weight)
    texts = ["the flight was late again", "lovely crew"]
    student.save_pretrained(tmp_path / "top")
    again = EarshotModel.from_pretrained(tmp_path / "top", device="cpu", backend="torch")
    assert again.encoder.config.num_hidden_layers == 1
    np.testing.assert_allclose(again.predict_proba(texts)["pain_points"], student.predict_proba(texts)["pain_points"],
                               atol=1e-6)
    assert not np.allclose(student_from_layers(teacher, 1).predict_proba(texts)["pain_points"],
                           student.predict_proba(texts)["pain_points"], atol=1e-4)
    with pytest.raises(ValueError, match="--student-layers 2,1: give each layer once, in increasing order"):
        student_from_layers(teacher, [2, 1])
    with pytest.raises(ValueError, match=r"--student-layers 0,2: the source encoder .* has 2 layers; number them "
                                         "from 1 to 2"):
        student_from_layers(teacher, [0, 2])
    with pytest.raises(SystemExit):
        main(["distill", "--teacher", str(teacher_dir), "--data", "x.csv", "--student-layers", "1,two",
              "--output", str(tmp_path / "never")])
    assert "--student-layers '1,two': give a count (3) or layer numbers from 1 (1,3,4,5,6)" in capsys.readouterr().err


def test_a_narrower_feed_forward_keeps_the_neurons_that_add_most(teacher_dir: Path, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Neurons whose output weights are zero add nothing: narrowing to the others must leave every
    answer as it was, through a save and load, while the teacher keeps its width."""
    teacher = EarshotModel.from_pretrained(teacher_dir, device="cpu")
    source = student_from_layers(teacher, 2)
    width = source.encoder.config.intermediate_size
    generator = torch.Generator().manual_seed(0)
    silent = [torch.randperm(width, generator=generator)[: width // 2] for _ in source.encoder.encoder.layer]
    with torch.no_grad():
        for layer, dead in zip(source.encoder.encoder.layer, silent):
            layer.output.dense.weight[:, dead] = 0.0
    texts = ["the flight was late again", "lovely crew", "they lost my bag and nobody called"]
    before = source.predict_proba(texts)
    narrow = narrow_ffn(copy.deepcopy(source), width - width // 2, texts)
    assert narrow.encoder.config.intermediate_size == width - width // 2
    for layer, dead in zip(narrow.encoder.encoder.layer, silent):
        assert layer.intermediate.dense.weight.shape[0] == width - width // 2
        assert layer.output.dense.weight.abs().sum(dim=0).min() > 0  # no silent neuron kept
    narrow.save_pretrained(tmp_path / "narrow")
    again = EarshotModel.from_pretrained(tmp_path / "narrow", device="cpu", backend="torch").predict_proba(texts)
    for head in ("sentiment", "pain_points"):
        np.testing.assert_allclose(again[head], before[head], atol=1e-5)
    # one neuron fewer than the live ones changes the answers: the test above could fail
    fewer = narrow_ffn(copy.deepcopy(source), width - width // 2 - 4, texts).predict_proba(texts)
    assert not np.allclose(fewer["pain_points"], before["pain_points"], atol=1e-6)
    assert teacher.encoder.config.intermediate_size == width
    with pytest.raises(ValueError, match=rf"--student-ffn {width}: the encoder's feed-forward blocks have {width} "
                                         rf"neurons; choose from 1 to {width - 1}"):
        narrow_ffn(copy.deepcopy(source), width, texts)


def test_a_student_can_start_from_another_model_with_the_teachers_heads(
        tiny_base: Path, teacher_dir: Path, feedback_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """--student-base with --student-layers: the layers of that model (an earshot folder keeps its
    heads) or of a base encoder (fresh heads), never the teacher's; other heads are refused by name."""
    teacher = EarshotModel.from_pretrained(teacher_dir, device="cpu")
    other = _fresh_student(tiny_base, teacher, seed=5)
    other.save_pretrained(tmp_path / "other")
    student = student_from_layers(student_start(teacher, str(tmp_path / "other")), [2])
    mine = student.encoder.encoder.layer[0].output.dense.weight
    torch.testing.assert_close(mine, other.encoder.encoder.layer[1].output.dense.weight)
    assert not torch.allclose(mine, teacher.encoder.encoder.layer[1].output.dense.weight)
    torch.testing.assert_close(student.heads["sentiment"].weight, other.heads["sentiment"].weight)
    assert student_start(teacher) is teacher
    fresh = student_start(teacher, str(tiny_base))
    assert [(h.name, h.labels) for h in fresh.config.heads] == [(h.name, h.labels) for h in teacher.config.heads]
    mood = Head("mood", "single", teacher.config.head("sentiment").labels)
    EarshotModel.from_base(str(tiny_base), [mood, teacher.config.head("pain_points")]).save_pretrained(tmp_path / "renamed")
    with pytest.raises(ValueError, match=r"--student-base .*renamed has heads .*'mood'.* and the teacher .*'sentiment'"):
        student_start(teacher, str(tmp_path / "renamed"))
    code = main(["distill", "--teacher", str(teacher_dir), "--data", str(feedback_csv), "--sentiment-column",
                 "sentiment", "--pain-points-column", "pain_points", "--student-base", str(tmp_path / "other"),
                 "--student-layers", "1", "--student-ffn", "16", "--output", str(tmp_path / "small"), "--epochs", "1",
                 "--no-progress"])
    assert code == 0, caplog.text
    small = EarshotModel.from_pretrained(tmp_path / "small", device="cpu")
    assert (small.encoder.config.num_hidden_layers, small.encoder.config.intermediate_size) == (1, 16)
    assert small.config.base_model == f"{tmp_path / 'other'} (first 1 layers, feed-forward 16 wide)"


def test_several_teachers_answer_as_their_average(tiny_base: Path, teacher_dir: Path, feedback_csv: Path,
                                                  tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    teacher = EarshotModel.from_pretrained(teacher_dir, device="cpu")
    other = _fresh_student(tiny_base, teacher, seed=7)
    other.save_pretrained(tmp_path / "other")
    train, validation = _split(feedback_csv)
    trainer = DistillationTrainer(_fresh_student(tiny_base, teacher), [teacher, other], train, validation,
                                  _config(tmp_path / "s", epochs=1))
    answers = trainer._teacher_answers(resume=False)
    texts = [e.text for e in train]
    mine, theirs = teacher.predict_proba(texts), other.predict_proba(texts)
    for head in ("sentiment", "pain_points"):
        np.testing.assert_allclose(answers[head], (mine[head] + theirs[head]) / 2, atol=1e-6)
    np.testing.assert_allclose(answers["embedding"], mine.embeddings, atol=1e-6)  # the first teacher's
    mood = Head("mood", "single", teacher.config.head("sentiment").labels)
    odd = EarshotModel.from_base(str(tiny_base), [mood, teacher.config.head("pain_points")])
    with pytest.raises(ValueError, match=r"differ from teacher .*'mood'"):
        DistillationTrainer(_fresh_student(tiny_base, teacher), [teacher, odd], train, validation,
                            _config(tmp_path / "t", epochs=1))
    code = main(["distill", "--teacher", str(teacher_dir), str(tmp_path / "other"), "--data", str(feedback_csv),
                 "--sentiment-column", "sentiment", "--pain-points-column", "pain_points", "--student-layers", "1",
                 "--output", str(tmp_path / "both"), "--epochs", "1", "--no-progress"])
    assert code == 0, caplog.text
    student = EarshotModel.from_pretrained(tmp_path / "both", device="cpu")
    assert student.config.provenance["teachers"] == [teacher.version, other.version]
    assert main(["evaluate", "--model", str(tmp_path / "both"), "--data", str(feedback_csv), "--sentiment-column",
                 "sentiment", "--pain-points-column", "pain_points"]) == 0
    card = (tmp_path / "both" / "README.md").read_text(encoding="utf-8")
    assert f"Distilled from teacher `{teacher.version}`" in card and f"and `{other.version}`" in card
    assert "(their answers averaged)" in card
