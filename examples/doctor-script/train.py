# QLoRA fine-tuning of Llama 2 7B on one 12 GB GPU (an RTX 3060 12GB), as tutorials wrote it
# for transformers 4.x. `vramdoc doctor train.py` says what breaks on transformers 5.
import torch
from datasets import load_dataset
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    DataCollatorForLanguageModeling,
    TrainingArguments,
    Trainer,
)
from transformers.optimization import AdamW
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

model_name = "NousResearch/Llama-2-7b-hf"
max_seq_length = 1024

bnb_config = BitsAndBytesConfig(
    load_in_4bit=True,
    bnb_4bit_quant_type="nf4",
    bnb_4bit_compute_dtype=torch.float16,
    bnb_4bit_use_double_quant=True,
)

model = AutoModelForCausalLM.from_pretrained(
    model_name,
    quantization_config=bnb_config,
    device_map={"": 0},
    torch_dtype=torch.float16,
    use_flash_attention_2=True,
)
model.config.use_cache = False
model = prepare_model_for_kbit_training(model)

tokenizer = AutoTokenizer.from_pretrained(model_name)
tokenizer.pad_token = tokenizer.eos_token

peft_config = LoraConfig(
    r=64,
    lora_alpha=16,
    lora_dropout=0.1,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    bias="none",
    task_type="CAUSAL_LM",
)
model = get_peft_model(model, peft_config)

dataset = load_dataset("timdettmers/openassistant-guanaco", split="train")
dataset = dataset.map(lambda x: tokenizer(x["text"], truncation=True, ...), batched=True)

training_arguments = TrainingArguments(
    output_dir="./results",
    overwrite_output_dir=True,
    num_train_epochs=1,
    per_device_train_batch_size=4,
    gradient_accumulation_steps=4,
    gradient_checkpointing=True,
    learning_rate=2e-4,
    fp16=True,
    max_grad_norm=0.3,
    warmup_ratio=0.03,
    lr_scheduler_type="constant",
    group_by_length=True,
    evaluation_strategy="no",
    logging_dir="./logs",
    logging_steps=25,
)
training_arguments.optim = "paged_adamw_32bit"

trainer = Trainer(
    model=model,
    args=training_arguments,
    train_dataset=dataset,
    tokenizer=tokenizer,
    data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
)
trainer.train()
