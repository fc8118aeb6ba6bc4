from transformers import AutoModelForSequenceClassification, TrainingArguments

model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased", num_labels=2)
args = TrainingArguments(
    output_dir="out",
    fp16=True,
    fp16_opt_level="O2",  # expect: A101
    fp16_backend="amp",  # expect: A101
    half_precision_backend="cuda_amp",  # expect: A101
    fp16_scale_window=1000,  # expect: A104
    no_cuda=False,  # expect: A102
    logging_dir="./logs",  # expect: A101
    # ...
    per_device_train_batch_size=16,
)
