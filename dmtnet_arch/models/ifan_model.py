"""IFAN's training recipe (Lee et al., CVPR 2021): deblurring, disparity and reblurring losses on the combined view."""

import torch
import torch.nn.functional as F
from basicsr.losses import build_loss
from basicsr.utils.registry import MODEL_REGISTRY

from dmtnet_arch.archs.ifan_arch import DOWNSCALE, IFAN, IFANReblurNet, warp_horizontally
from dmtnet_arch.models.dual_pixel_model import DualPixelModel
from dmtnet_arch.utils.checkpoint import load_network_weights
from dmtnet_arch.utils.options import Option

RELEASED_LOSS = {'type': 'MSELoss', 'loss_weight': 1.0, 'reduction': 'mean'}  # every term of the released trainer


def downscale(image: torch.Tensor) -> torch.Tensor:
    """1/8 scale by area averaging, as the released trainer makes its loss targets."""
    return F.interpolate(image, scale_factor=1 / DOWNSCALE, mode='area')


@MODEL_REGISTRY.register()
class IFANModel(DualPixelModel):
    """IFAN (arch ``IFAN``) trained as its release trains it, validated and tested like every dual-pixel model.

    The network's input is the combined view (the dataset's ``lqC``); the left and right views (``lq``) serve only
    the training losses. ``train:`` takes DualPixelModel's options plus three loss terms, summed (BasicSR losses;
    each defaults to MSE with weight 1, the released trainer's):

    - ``pixel_opt``: deblurring, the output against the target;
    - ``dme_opt``: disparity (DME), the 1/8-scale right view warped by the disparity estimated from it, against the
      1/8-scale left view;
    - ``reblur_opt``: reblurring, the training-only :class:`IFANReblurNet` applied to the target with the predicted
      filters, against the 1/8-scale combined view.

    The reblurring network shares the optimizer with IFAN (as released); its weights are saved in the training
    states (``<iter>.state``) so that resuming restores them, and ``path: pretrain_network_reblur`` may name a file
    to start from (the released ``IFAN.pytorch``: its ``module.reblurNet.*`` keys).
    """

    option_schema = {
        'train': {**DualPixelModel.option_schema['train'], 'dme_opt': Option(dict), 'reblur_opt': Option(dict)},
        'val': DualPixelModel.option_schema['val'],
    }
    path_keys = ('pretrain_network_reblur',)
    per_image_tensors = (*DualPixelModel.per_image_tensors, 'left', 'right')

    def feed_data(self, data):
        if 'lqC' not in data:
            raise KeyError(
                'IFANModel runs on the combined view, but the dataset items have no lqC: give the dataset '
                'dataroot_lqC (folder or LMDB layout) or use_combined: true (dataroot_dpdd)'
            )
        super().feed_data(data)
        self.left, self.right = self.lq.chunk(2, dim=1)
        self.lq = data['lqC'].to(self.device)

    def init_training_settings(self):
        ifan = self.get_bare_model(self.net_g)
        if not isinstance(ifan, IFAN):
            raise ValueError(f'IFANModel trains network_g type IFAN, got {type(ifan).__name__}')
        net_reblur = IFANReblurNet.for_network(ifan)
        load_path = self.opt['path'].get('pretrain_network_reblur')
        if load_path:
            load_network_weights(net_reblur, load_path)
        self.net_reblur = self.model_to_device(net_reblur)
        self.net_reblur.train()
        train_opt = self.opt['train']
        train_opt['pixel_opt'] = train_opt.get('pixel_opt') or dict(RELEASED_LOSS)
        super().init_training_settings()
        self.cri_dme = build_loss(dict(train_opt.get('dme_opt') or RELEASED_LOSS)).to(self.device)
        self.cri_reblur = build_loss(dict(train_opt.get('reblur_opt') or RELEASED_LOSS)).to(self.device)

    def check_crop_size(self):
        super().check_crop_size()
        train_set = self.opt.get('datasets', {}).get('train', {})
        sizes = [('gt_size', train_set.get('gt_size'))]
        if self.progressive:
            sizes += [('gt_sizes', size) for size in self.progressive.patch_sizes]
        for option, size in sizes:
            if size is not None and size % DOWNSCALE:
                raise ValueError(
                    f'datasets: train: {option} {size} is not a multiple of {DOWNSCALE}: IFAN compares its training '
                    f'maps at 1/{DOWNSCALE} scale (the release crops to multiples of {DOWNSCALE}); use e.g. 256'
                )

    def setup_optimizers(self):
        """One optimizer over IFAN and its reblurring network, as the release trains them."""
        optim_opt = dict(self.opt['train']['optim_g'])
        params = [p for net in (self.net_g, self.net_reblur) for p in net.parameters() if p.requires_grad]
        self.optimizer_g = self.get_optimizer(optim_opt.pop('type'), params, **optim_opt)
        self.optimizers.append(self.optimizer_g)

    def training_losses(self) -> dict[str, torch.Tensor]:
        with self.autocast():
            outputs = self.training_forward(self.lq, right=self.right)
            reblurred = self.net_reblur(self.gt, outputs['filters'])
        self.output = outputs['result']
        warped_right = warp_horizontally(downscale(self.right), outputs['right_disparity'].float())
        return {
            'l_deblur': self.cri_pix(self.output.float(), self.gt),
            'l_dme': self.cri_dme(warped_right, downscale(self.left)),
            'l_reblur': self.cri_reblur(reblurred.float(), downscale(self.lq)),
        }

    def extra_training_state(self) -> dict:
        return {**super().extra_training_state(), 'net_reblur': self.get_bare_model(self.net_reblur).state_dict()}

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if 'net_reblur' in resume_state:
            self.get_bare_model(self.net_reblur).load_state_dict(resume_state['net_reblur'])
